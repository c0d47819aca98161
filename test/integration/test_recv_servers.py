"""Real servers on the receive path: an asyncio echo server (level-triggered
epoll), an echo server on select.epoll with EPOLLET, and a Node.js http server
(libuv; io_uring forced on, which the shim refuses), each run without the shim
and then under a policy whose programs take every byte their accepted sockets
receive: `pass` (recv_pass.json: stream parser + stream verdict PASS) or
`ingress` (recv_ingress.json: skb verdict, ingress redirect through the
sockhash). Clients (this process, not under the shim) keep several connections
open, exchange small messages and bulk data, and must get the same answers as
without the shim. Under the shim, `sockshim dump` must then show that the
receive engine took every byte each connection sent (rx in) and gave it the
policy's verdict, so whatever the server read came from the ingress queue;
and each client's half-close must reach the server as EOF.

usage: test_recv_servers.py asyncio|epollet|node pass|ingress
"""

import hashlib
import json
import os
import random
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
POLICIES = {"pass": "recv_pass.json", "ingress": "recv_ingress.json"}
VERDICT_COUNTER = {"pass": "passed", "ingress": "redirected"}
CONNECTIONS = 6
DEADLINE = 90  # seconds for one run's client work
TIMEOUT = 30  # seconds any one socket operation may wait



def first_line(proc, timeout=20):
    """The first line proc prints, or "" when it prints none within timeout."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().decode().strip() if ready else ""

def server_argv(kind, port):
    if kind == "node":
        return ["node", os.path.join(HERE, "recv_node_server.js"), str(port)]
    return [harness.PYTHON, os.path.join(HERE, "recv_servers.py"), kind, str(port)]


class Connection:
    """One client connection that counts what it sends."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sent = 0

    def send(self, data):
        self.sock.sendall(data)
        self.sent += len(data)

    def recv_exactly(self, n):
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(min(n - len(out), 1 << 18))
            if not chunk:
                raise EOFError(f"EOF after {len(out)} of {n} bytes")
            out += chunk
        return bytes(out)


def echo_session(conn, i):
    """Small round trips (a lost wake-up hangs here), then 4 MiB sent while the
    echo is read back, starting half a second late: the server's sends block,
    it stops reading, its queue fills and the engine must hold off and resume."""
    rng = random.Random(i)
    for n in range(50):
        msg = f"ping {i} {n} ".encode() + rng.randbytes(rng.randrange(1, 200))
        conn.send(msg)
        if conn.recv_exactly(len(msg)) != msg:
            raise AssertionError(f"round trip {n} came back changed")
    bulk = rng.randbytes(4 << 20)
    error = []

    def writer():
        try:
            for start in range(0, len(bulk), 65536):
                conn.send(bulk[start:start + 65536])
        except Exception as e:
            error.append(e)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(0.5)
    echoed = conn.recv_exactly(len(bulk))
    t.join()
    if error:
        raise error[0]
    if echoed != bulk:
        raise AssertionError("the 4 MiB echo came back changed")
    return f"connection {i}: 50 round trips, 4 MiB echo sha256 {hashlib.sha256(echoed).hexdigest()}"


def http_request(conn, method, body):
    head = f"{method} / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n"
    conn.send(head.encode() + body)
    raw = bytearray()
    while b"\r\n\r\n" not in raw:
        chunk = conn.sock.recv(4096)
        if not chunk:
            raise EOFError("EOF in a response header")
        raw += chunk
    header, rest = bytes(raw).split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":")[1]) for line in header.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    status = header.split(b"\r\n")[0].decode()
    return status, (rest + conn.recv_exactly(length - len(rest))).decode().strip()


def http_session(conn, i):
    """Keep-alive requests: empty GETs and POSTs of growing bodies; the server
    answers each with its body's length and sha256."""
    rng = random.Random(i)
    lines = []
    for size in (0, 1, 1000, 1 << 20, 0, 6 << 20):
        body = rng.randbytes(size)
        status, answer = http_request(conn, "POST" if size else "GET", body)
        expected = f"{size} {hashlib.sha256(body).hexdigest()}"
        if status != "HTTP/1.1 200 OK" or answer != expected:
            raise AssertionError(f"{size}-byte request: {status} {answer!r}, expected {expected}")
        lines.append(answer)
    return f"connection {i}: " + ", ".join(a.split()[0] for a in lines)


def curl_post(port, directory):
    """One request from curl, a real client, with a 2 MiB body."""
    path = os.path.join(directory, "body")
    body = random.Random(99).randbytes(2 << 20)
    with open(path, "wb") as f:
        f.write(body)
    proc = subprocess.run(["curl", "-sS", "--max-time", str(TIMEOUT), "--data-binary", f"@{path}",
                           f"http://127.0.0.1:{port}/"], capture_output=True, timeout=TIMEOUT + 5)
    if proc.returncode != 0:
        harness.fail(f"curl exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
    answer = proc.stdout.decode().strip()
    if answer != f"{len(body)} {hashlib.sha256(body).hexdigest()}":
        harness.fail(f"curl got {answer!r}")
    return f"curl: {answer}"


def run_clients(kind, port):
    """All connections at once; returns (their reports, the open connections)."""
    conns = [Connection(port) for _ in range(CONNECTIONS)]
    session = http_session if kind == "node" else echo_session
    reports, errors = [None] * CONNECTIONS, []

    def work(i):
        try:
            reports[i] = session(conns[i], i)
        except Exception as e:
            errors.append(f"connection {i}: {e!r}")

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(CONNECTIONS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + DEADLINE
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() for t in threads):
        stuck = [i for i, r in enumerate(reports) if r is None]
        harness.fail(f"connections {stuck} did not finish within {DEADLINE} s "
                     f"(sent so far: {[conns[i].sent for i in stuck]})")
    if errors:
        harness.fail("; ".join(errors))
    return reports, conns


def check_counters(pid, port, conns, policy, env):
    """Per open connection, the psock of the server's socket took every byte the
    client sent and gave all of it the policy's verdict."""
    proc = subprocess.run([harness.SOCKSHIM, "dump", str(pid), "stats", "--json"], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    if proc.returncode != 0:
        harness.fail(f"sockshim dump exited {proc.returncode}: {proc.stderr[-500:]}")
    psocks = json.loads(proc.stdout)["processes"][0].get("psocks", [])
    by_remote = {p.get("remote"): p for p in psocks if p.get("local") == f"127.0.0.1:{port}"}
    counter = VERDICT_COUNTER[policy]
    for c in conns:
        remote = "127.0.0.1:%d" % c.sock.getsockname()[1]
        p = by_remote.get(remote)
        if p is None:
            harness.fail(f"no psock for the server side of {remote}: {sorted(by_remote)}")
        rx = p["stats"]["rx"]
        if rx["in"] != c.sent or rx[counter] != c.sent or rx["dropped"] != 0:
            harness.fail(f"server side of {remote}: client sent {c.sent} bytes, "
                         f"psock rx counters {rx} (expected in == {counter} == {c.sent})")
    harness.note(f"ok: every byte of {len(conns)} connections went through the receive engine "
                 f"({counter}), {sum(c.sent for c in conns)} bytes")


def check_eof(conns, kind):
    """Each client half-closes: the server must read EOF (through the engine
    under the shim) and close its side, which the client then reads as EOF."""
    for c in conns:
        c.sock.shutdown(socket.SHUT_WR)
    for i, c in enumerate(conns):
        try:
            rest = c.sock.recv(65536)
        except OSError as e:
            harness.fail(f"connection {i}: {e!r} instead of EOF after the half-close")
        if rest:
            harness.fail(f"connection {i}: {len(rest)} more bytes instead of EOF")
    harness.note(f"ok: the {kind} server saw every half-close and closed")


def scenario(kind, policy, mode, directory):
    port = harness.free_port()
    env = harness.environment(mode, SOCKSHIM_POLICY=os.path.join(HERE, POLICIES[policy]),
                              UV_USE_IO_URING="1")
    server = subprocess.Popen(server_argv(kind, port), env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    conns = []
    try:
        if first_line(server) != "listening":
            server.kill()
            harness.fail(f"{mode}: {kind} server did not start: "
                         f"{server.communicate()[1].decode()[-800:]}")
        reports, conns = run_clients(kind, port)
        if kind == "node":
            reports.append(curl_post(port, directory))
        if mode == "shim":
            check_counters(server.pid, port, conns, policy, env)
        check_eof(conns, kind)
    finally:
        for c in conns:
            c.sock.close()
        server.terminate()
        try:
            _, err = server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            _, err = server.communicate()
    harness.check_loaded(mode, err.decode(errors="replace"), kind)
    harness.note(f"ok: {mode}: {kind} answered {len(reports)} clients correctly")
    return reports


def main():
    kind, policy = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="sockshim-recv-") as directory:
        results = {mode: scenario(kind, policy, mode, directory) for mode in harness.MODES}
    harness.same_in_both(results, f"the answers of the {kind} server ({policy})")


main()
