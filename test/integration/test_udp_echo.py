"""A UDP echo server, `socat UDP4-RECVFROM:PORT,fork SYSTEM:cat...`, whose
socket is in a sockmap with an sk_skb verdict that passes every datagram
(udp_pass.json). sockops run only for TCP, so the test puts the bound socket
in the map as a user would: `sockshim map update PID udp 0 FD`, the fd found
with `sockshim dump PID sockets --json`, once socat waits in poll for the
first datagram (the insertion must wake that wait). Three clients each send
three datagrams of their own sizes and must get each back, whole, one reply
per datagram, from the server's address. socat's parent peeks at each
datagram and forks a child that reads it (the datagram claim at fork). The
same clients run against socat without the shim first.

Each child stays until the test ends (its command sleeps after cat, and -t
outlasts the test): socat 1.7.4 keeps the pid of the last child its recvfrom
loop waited for, so that child's exit after the parent moved on ends the
parent's next wait at the first signal, before the new child read its
datagram; the parent forks a second child for it, which reads the next
client's datagram and drops it (wrong peer). Plain socat under load loses
datagrams that way too (here 1 run in about 20)."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "udp_pass.json")
CLIENTS, DATAGRAMS, TIMEOUT = 3, 3, 20.0  # a fork and exec per datagram: slow under load


def udp_fd(pid):
    """socat's bound UDP socket's fd, once the shim tracks it."""
    def tracked():
        r = harness.sockshim("dump", str(pid), "sockets", "--json", code=None)
        if r.returncode == 0:
            for s in json.loads(r.stdout)["processes"][0]["sockets"]:
                if s["family"] == "AF_INET" and s["type"] == "SOCK_DGRAM":
                    return s["fds"][0]
        return None
    return harness.wait_for(f"a UDP socket in sockshim dump {pid}", tracked, limit=10)


def client(n, port, errors):
    """Sends DATAGRAMS datagrams, each waiting for its echo."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(TIMEOUT)
    for i in range(DATAGRAMS):
        msg = bytes([65 + n]) * (100 * (i + 1) + 7 * n)
        s.sendto(msg, ("127.0.0.1", port))
        try:
            data, addr = s.recvfrom(65536)
        except socket.timeout:
            errors.append(f"client {n} datagram {i} ({len(msg)} bytes): no echo")
            return
        if data != msg or addr != ("127.0.0.1", port):
            errors.append(f"client {n} datagram {i}: sent {len(msg)} bytes, got {len(data)} "
                          f"bytes from {addr}")
            return
    s.setblocking(False)
    try:
        extra, _ = s.recvfrom(65536)
        errors.append(f"client {n}: an extra reply of {len(extra)} bytes")
    except BlockingIOError:
        pass


def wait_bound(port):
    """Until a UDP socket is bound to 127.0.0.1:port (/proc/net/udp)."""
    local = f"0100007F:{port:04X}"

    def bound():
        with open("/proc/net/udp") as f:
            return any(line.split()[1] == local for line in f.readlines()[1:])
    harness.wait_for(f"socat binds UDP port {port}", bound, limit=10)


def asleep_in_poll(pid):
    """socat's thread is asleep in poll or select (x86_64 and aarch64 numbers)."""
    try:
        with open(f"/proc/{pid}/syscall") as f:
            return int(f.read().split()[0]) in {7, 23, 270, 271, 72, 73}
    except (OSError, ValueError, IndexError):
        return False


def run(mode):
    port = harness.free_port()
    env = harness.environment(mode, **({"SOCKSHIM_POLICY": POLICY} if mode == "shim" else {}))
    server = subprocess.Popen(["socat", "-t", "120", f"UDP4-RECVFROM:{port},bind=127.0.0.1,fork",
                               "SYSTEM:cat; exec sleep 120"],
                              env=env, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_bound(port)
        if mode == "shim":
            fd = udp_fd(server.pid)
            harness.wait_for("socat asleep in poll", lambda: asleep_in_poll(server.pid), limit=10)
            harness.sockshim("map", "update", str(server.pid), "udp", "0", str(fd))
        errors = []
        threads = [threading.Thread(target=client, args=(n, port, errors)) for n in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            harness.fail(f"{mode}: " + "; ".join(errors))
        harness.note(f"{mode}: {CLIENTS} clients x {DATAGRAMS} datagrams echoed, one reply each")
    finally:
        # socat and the children it forked (they stay until now).
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


for mode in harness.MODES:
    run(mode)
print("PASS")
