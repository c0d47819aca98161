"""A peer that speaks first (issue 11, item 1): sockops insert a socket at
accept()/connect() return, so bytes often predate insertion. Real programs
under parser policies must behave as if the socket had been inserted during
the handshake: no blocking read returns EAGAIN, nothing is lost.

`test_peer_first.py CASE...`:
  socat-client  socat under policy/examples/forwarder.json; the client
                (`socat -u OPEN:file TCP:...`) sends a file before socat
                accepts (socat is stopped until the bytes wait in its
                socket): upstream must get the file (sha256), socat exit 0.
  socat-backend the same forwarder; the upstream server sends a file before
                socat's connect() returns (socat is stopped inside it), the
                client only reads: it must get the file, socat exit 0.
  http          python3 -m http.server under a "\\r\\n" delimiter parser and a
                pass verdict, 10 fetches with curl: each reply is the file.
  threaded      a socketserver.ThreadingTCPServer with blocking reads under
                policy/examples/length_prefix_drop_x.json, 20 client threads
                at once: every allowed frame is echoed, no BlockingIOError.
  map-update    bytes wait in an accepted socket that `sockshim map update`
                then inserts (parser + pass): the next blocking read gets them.
  iperf3        iperf3 -s under a whole-frame parser and pass verdict, stopped
                until the client's cookie waits in its socket; the client
                sends 10 MB: both complete.
"""

import hashlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "policy", "examples")
LIMIT = 20  # seconds for any one condition or program


def tcp_table():
    """(local port, remote port, state, rx_queue) of each IPv4 TCP socket (a
    FIN counts one in rx_queue)."""
    rows = []
    with open("/proc/net/tcp") as f:
        for line in list(f)[1:]:
            cols = line.split()
            local, remote = cols[1].split(":"), cols[2].split(":")
            rx_queue = int(cols[4].split(":")[1], 16)
            rows.append((int(local[1], 16), int(remote[1], 16), cols[3], rx_queue))
    return rows


def listening(port):
    return any(lp == port and st == "0A" for lp, _, st, _ in tcp_table())


def write_policy(directory, name, policy):
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        json.dump(policy, f)
    return path


def server_policy(directory, port, frame):
    """Sockets accepted on port go into a sockhash whose parser cuts `frame`
    and whose verdict passes every frame."""
    return write_policy(directory, "server.json", {
        "version": 1,
        "description": "accepted sockets on the test port: parser and pass verdict",
        "maps": {"accepted": {"type": "sockhash", "max_entries": 64,
                              "key": ["local_ip4", "local_port", "remote_ip4", "remote_port"]}},
        "programs": {
            "insert": {"type": "sockops", "rules": [
                {"if": {"op": "passive_established", "local_port": port},
                 "do": [{"map_update": {"map": "accepted", "key": "self", "flags": "BPF_ANY"}}]}]},
            "parser": {"type": "sk_skb/stream_parser", "frame": frame},
            "pass": {"type": "sk_skb/stream_verdict", "rules": [{"do": ["pass"]}]}},
        "attach": [
            {"program": "parser", "map": "accepted", "attach_type": "BPF_SK_SKB_STREAM_PARSER"},
            {"program": "pass", "map": "accepted", "attach_type": "BPF_SK_SKB_STREAM_VERDICT"}],
        "sockops": ["insert"]})


def start_socat(directory, listen_port, upstream_port):
    policy = harness.forwarder_policy(directory, listen_port, upstream_port)
    env = harness.environment("shim", SOCKSHIM_POLICY=policy)
    err = open(os.path.join(directory, "socat.err"), "wb")
    socat = subprocess.Popen(["socat", "-t", "5", f"TCP-LISTEN:{listen_port},bind=127.0.0.1,"
                              "reuseaddr", f"TCP:127.0.0.1:{upstream_port}"],
                             env=env, stdout=subprocess.DEVNULL, stderr=err)
    harness.wait_for("socat listens", lambda: listening(listen_port) or socat.poll() is not None)
    return socat


def socat_log(directory):
    with open(os.path.join(directory, "socat.err"), errors="replace") as f:
        return f.read()


def finish_socat(socat, directory):
    try:
        code = socat.wait(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        socat.kill()
        socat.wait()
        harness.fail(f"socat did not exit: {socat_log(directory)[-500:]}")
    if code != 0:
        harness.fail(f"socat exited {code}: {socat_log(directory)[-500:]}")
    harness.check_loaded("shim", socat_log(directory), "socat")


def receive_all(sock):
    digest, n = hashlib.sha256(), 0
    sock.settimeout(LIMIT)
    while True:
        data = sock.recv(1 << 16)
        if not data:
            return n, digest.hexdigest()
        digest.update(data)
        n += len(data)


def socat_client(directory):
    # 48 KiB fits the receive window of a socket not yet accepted: all of it
    # waits in the kernel before insertion.
    data = os.urandom(48 << 10)
    path = os.path.join(directory, "file")
    with open(path, "wb") as f:
        f.write(data)
    listen_port, upstream_port = harness.free_port(), harness.free_port()
    upstream = socket.create_server(("127.0.0.1", upstream_port))
    upstream.settimeout(LIMIT)
    socat = start_socat(directory, listen_port, upstream_port)
    try:
        os.kill(socat.pid, signal.SIGSTOP)
        client = subprocess.Popen(["socat", "-u", f"OPEN:{path}", f"TCP:127.0.0.1:{listen_port}"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        harness.wait_for("the client's bytes wait in socat's socket",
                 lambda: any(lp == listen_port and st != "0A" and q >= len(data)
                             for lp, _, st, q in tcp_table()))
        os.kill(socat.pid, signal.SIGCONT)
        server, _ = upstream.accept()
        n, sha = receive_all(server)
        if sha != hashlib.sha256(data).hexdigest():
            harness.fail(f"upstream got {n} bytes of {len(data)}, other than the client sent; "
                         f"socat: {socat_log(directory)[-500:]}")
        server.close()
        client.wait(timeout=LIMIT)
        finish_socat(socat, directory)
        harness.note(f"ok: socat-client: {len(data)} bytes sent before insertion reached "
                     "upstream intact")
    finally:
        upstream.close()
        if socat.poll() is None:
            os.kill(socat.pid, signal.SIGCONT)
            socat.kill()
            socat.wait()


CONNECT = {42, 203}  # connect on x86_64, aarch64


def socat_backend(directory):
    # Upstream's bytes must wait in socat's socket before its connect()
    # returns: upstream's accept queue (backlog 0) is held full, so socat's
    # SYN is dropped and its connect sleeps; socat is stopped there, the
    # queue freed, and the retransmitted SYN completes the handshake in the
    # kernel; upstream accepts and sends; then socat goes on.
    data = os.urandom(48 << 10)
    listen_port, upstream_port = harness.free_port(), harness.free_port()
    upstream = socket.socket()
    upstream.bind(("127.0.0.1", upstream_port))
    upstream.listen(0)
    upstream.settimeout(LIMIT)
    filler = socket.create_connection(("127.0.0.1", upstream_port), timeout=LIMIT)
    socat = start_socat(directory, listen_port, upstream_port)
    try:
        client = socket.create_connection(("127.0.0.1", listen_port), timeout=LIMIT)
        harness.wait_for("socat asleep in connect()",
                         lambda: harness.syscall_of(socat.pid, socat.pid) in CONNECT)
        os.kill(socat.pid, signal.SIGSTOP)
        upstream.accept()[0].close()
        server, (_, socat_port) = upstream.accept()
        server.sendall(data)
        server.shutdown(socket.SHUT_WR)
        harness.wait_for("upstream's bytes wait in socat's socket",
                 lambda: any(lp == socat_port and q >= len(data) for lp, _, _, q in tcp_table()))
        os.kill(socat.pid, signal.SIGCONT)
        n, sha = receive_all(client)
        if sha != hashlib.sha256(data).hexdigest():
            harness.fail(f"the client got {n} bytes of {len(data)}, other than upstream sent; "
                         f"socat: {socat_log(directory)[-500:]}")
        client.close()
        server.close()
        finish_socat(socat, directory)
        harness.note(f"ok: socat-backend: {len(data)} bytes upstream sent before insertion "
                     "reached the client intact")
    finally:
        filler.close()
        upstream.close()
        if socat.poll() is None:
            os.kill(socat.pid, signal.SIGCONT)
            socat.kill()
            socat.wait()


def http(directory):
    root = os.path.join(directory, "www")
    os.mkdir(root)
    body = os.urandom(200 << 10)
    with open(os.path.join(root, "file"), "wb") as f:
        f.write(body)
    port = harness.free_port()
    env = harness.environment("shim", SOCKSHIM_POLICY=server_policy(
        directory, port, {"delimiter": "\r\n", "max": 65536}))
    server = subprocess.Popen([harness.PYTHON, "-m", "http.server", str(port), "--bind",
                               "127.0.0.1", "--directory", root], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        harness.wait_for("http.server listens",
                         lambda: listening(port) or server.poll() is not None)
        out = os.path.join(directory, "got")
        for i in range(10):
            proc = subprocess.run(["curl", "-sS", "--max-time", str(LIMIT), "-o", out,
                                   f"http://127.0.0.1:{port}/file"], capture_output=True,
                                  text=True, timeout=LIMIT + 5)
            if proc.returncode != 0:
                harness.fail(f"fetch {i}: curl exited {proc.returncode}: {proc.stderr.strip()}")
            with open(out, "rb") as f:
                got = f.read()
            if got != body:
                harness.fail(f"fetch {i}: {len(got)} bytes, not the file's {len(body)}")
        harness.note("ok: http: 10 fetches through a \"\\r\\n\" delimiter parser, each the file")
    finally:
        server.terminate()
        _, err = server.communicate(timeout=LIMIT)
    harness.check_loaded("shim", err.decode(errors="replace"), "http.server")


THREADED_SERVER = r'''
import socket, socketserver, struct, sys

def exact(sock, n):
    out = b""
    while len(out) < n:
        data = sock.recv(n - len(out))   # blocking: never EAGAIN
        if not data:
            return None
        out += data
    return out

class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            head = exact(self.request, 4)
            if head is None:
                return
            payload = exact(self.request, struct.unpack(">I", head)[0])
            self.request.sendall(b"ok " + payload + b"\n")

socketserver.ThreadingTCPServer.allow_reuse_address = True
server = socketserver.ThreadingTCPServer(("127.0.0.1", int(sys.argv[1])), Echo)
server.daemon_threads = True
server.serve_forever()
'''


def threaded(directory):
    port = harness.free_port()
    with open(os.path.join(EXAMPLES, "length_prefix_drop_x.json")) as f:
        policy = json.load(f)
    policy["programs"]["insert"]["rules"][0]["if"]["local_port"] = port
    env = harness.environment("shim", SOCKSHIM_POLICY=write_policy(directory, "framed.json",
                                                                    policy))
    script = os.path.join(directory, "server.py")
    with open(script, "w") as f:
        f.write(THREADED_SERVER)
    server = subprocess.Popen([harness.PYTHON, script, str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    errors = []
    try:
        harness.wait_for("the threaded server listens",
                         lambda: listening(port) or server.poll() is not None)

        def client(i):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=LIMIT) as s:
                    # Spoken at once, before the server's accept: a dropped frame between two.
                    frames = [f"hello {i}".encode(), f"Xsecret {i}".encode(), f"bye {i}".encode()]
                    s.sendall(b"".join(struct.pack(">I", len(p)) + p for p in frames))
                    want = f"ok hello {i}\nok bye {i}\n".encode()
                    got = b""
                    while len(got) < len(want):
                        data = s.recv(4096)
                        if not data:
                            break
                        got += data
                    if got != want:
                        errors.append(f"client {i}: got {got!r}")
            except OSError as e:
                errors.append(f"client {i}: {e!r}")

        threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(LIMIT)
    finally:
        server.terminate()
        _, err = server.communicate(timeout=LIMIT)
    err = err.decode(errors="replace")
    harness.check_loaded("shim", err, "threaded server")
    if "BlockingIOError" in err or "Traceback" in err:
        harness.fail(f"the server's threads failed: {err[-1500:]}")
    if errors:
        harness.fail(f"{len(errors)} of 20 clients: {errors[:3]}")
    harness.note("ok: threaded: 20 clients, every allowed frame echoed, no BlockingIOError")


def iperf3(directory):
    port = harness.free_port()
    env = harness.environment("shim", SOCKSHIM_POLICY=server_policy(directory, port, "whole"))
    server = subprocess.Popen(["iperf3", "-s", "-1", "-p", str(port), "-B", "127.0.0.1"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        harness.wait_for("iperf3 -s listens", lambda: listening(port) or server.poll() is not None)
        # The client speaks first (its cookie): stopped, the server accepts
        # only once the cookie waits in its socket.
        os.kill(server.pid, signal.SIGSTOP)
        client = subprocess.Popen(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-n", "10M"],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        harness.wait_for("the client's cookie waits in the server's socket",
                 lambda: any(lp == port and st != "0A" and q > 0 for lp, _, st, q in tcp_table()))
        os.kill(server.pid, signal.SIGCONT)
        report, _ = client.communicate(timeout=60)
        if client.returncode != 0:
            harness.fail(f"iperf3 -c exited {client.returncode}: {report[-800:]}")
        out, err = server.communicate(timeout=LIMIT)
    except subprocess.TimeoutExpired:
        harness.fail("iperf3 did not complete")
    finally:
        if server.poll() is None:
            os.kill(server.pid, signal.SIGCONT)
            server.kill()
            server.wait()
    if server.returncode != 0:
        harness.fail(f"iperf3 -s exited {server.returncode}: {(out + err).decode()[-800:]}")
    harness.check_loaded("shim", err.decode(errors="replace"), "iperf3")
    harness.note("ok: iperf3: 10 MB through a server under a parser policy")


UPDATE_TARGET = r'''
import json, os, socket, sys
srv = socket.create_server(("127.0.0.1", 0))
print(json.dumps({"pid": os.getpid(), "port": srv.getsockname()[1]}), flush=True)
conn, _ = srv.accept()
print(json.dumps({"fd": conn.fileno()}), flush=True)
sys.stdin.readline()          # inserted meanwhile by `sockshim map update`
try:
    got = conn.recv(100)      # blocking
    print(json.dumps({"got": got.decode()}), flush=True)
except OSError as e:
    print(json.dumps({"error": repr(e)}), flush=True)
'''


def map_update(directory):
    """Bytes wait in a socket that `sockshim map update` then inserts: the
    program's next blocking read gets them through the parser and verdict."""
    runtime = os.path.join(directory, "run")
    os.mkdir(runtime, 0o700)
    env = dict(os.environ, SOCKSHIM_RUNTIME_DIR=runtime)
    env.pop("LD_PRELOAD", None)
    script = os.path.join(directory, "target.py")
    with open(script, "w") as f:
        f.write(UPDATE_TARGET)
    target = subprocess.Popen([harness.SOCKSHIM, "run", "-p",
                               os.path.join(HERE, "peer_first_update.json"), "--",
                               harness.PYTHON, script], env=env, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        facts = json.loads(target.stdout.readline())
        client = socket.create_connection(("127.0.0.1", facts["port"]), timeout=LIMIT)
        fd = json.loads(target.stdout.readline())["fd"]
        client.sendall(b"early")
        harness.wait_for("the bytes wait in the accepted socket",
                 lambda: any(rp == client.getsockname()[1] and q >= 5
                             for _, rp, _, q in tcp_table()))
        proc = subprocess.run([harness.SOCKSHIM, "map", "update", str(facts["pid"]), "socks", "0",
                               str(fd)], env=env, capture_output=True, text=True, timeout=LIMIT)
        if proc.returncode != 0:
            harness.fail(f"sockshim map update: {proc.stderr.strip()}")
        target.stdin.write("go\n")
        target.stdin.flush()
        result = json.loads(target.stdout.readline())
        if result != {"got": "early"}:
            harness.fail(f"the blocking read after `sockshim map update` gave {result}")
        client.close()
        harness.note("ok: map-update: a blocking read after the insertion got the bytes "
                     "that predate it")
    finally:
        if target.poll() is None:
            target.kill()
        target.wait()


CASES = {"socat-client": socat_client, "socat-backend": socat_backend, "http": http,
         "threaded": threaded, "iperf3": iperf3, "map-update": map_update}


def main():
    for case in sys.argv[1:]:
        with tempfile.TemporaryDirectory(prefix="sockshim-first-") as directory:
            CASES[case](directory)
    harness.note("PASS")


main()
