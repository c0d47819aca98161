"""A UDP echo server, `socat UDP4-RECVFROM:PORT,fork EXEC:cat`, whose socket
is in a sockmap with an sk_skb verdict that passes every datagram
(udp_pass.json). sockops run only for TCP, so the test puts the bound socket
in the map as a user would: `sockshim map update PID udp 0 FD`, the fd found
with `sockshim dump PID sockets --json`. Three clients each send three
datagrams of their own sizes and must get each back, whole, one reply per
datagram, from the server's address. socat's parent peeks at each datagram
and forks a child that reads it (the datagram claim at fork). The same
clients run against socat without the shim first."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

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


def switches(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt"))


def repoll(pid):
    """socat's poll began before the insertion, in the kernel, which wakes it
    for a datagram only if the engine has not taken it yet: the shim's poll and
    select watch a psock's queue only in calls made once the psock exists (a
    known gap; epoll has none). A SIGCHLD, which socat catches as each forked
    child exits, makes it poll again; the test waits until it sleeps again."""
    before = switches(pid)
    os.kill(pid, signal.SIGCHLD)
    deadline = time.monotonic() + 10
    while switches(pid) == before and time.monotonic() < deadline:
        time.sleep(0.01)


def run(mode):
    port = harness.free_port()
    env = harness.environment(mode, **({"SOCKSHIM_POLICY": POLICY} if mode == "shim" else {}))
    server = subprocess.Popen(["socat", f"UDP4-RECVFROM:{port},bind=127.0.0.1,fork", "EXEC:cat"],
                              env=env, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_bound(port)
        if mode == "shim":
            fd = udp_fd(server.pid)
            harness.sockshim("map", "update", str(server.pid), "udp", "0", str(fd))
            repoll(server.pid)
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
        # socat and the children it forked (one may still wait for a datagram).
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


for mode in harness.MODES:
    run(mode)
print("PASS")
