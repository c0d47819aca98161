"""haproxy in `mode tcp` between a Python client and a Python backend, under a
policy whose sockops insert every socket whose connect completes
(active_established) and whose sk_msg program passes and counts. haproxy
connects upstream without blocking and never asks SO_ERROR (it uses
getpeername, sendto, recvfrom), so its upstream sockets must enter the map at
the first sign of the completion: every request is answered right, and
`sockshim dump` shows each open upstream socket in the map, ESTABLISHED, with
its request's bytes counted by the program."""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types

from harness import (MODES, check_loaded, dump, environment, fail, free_port, note,
                     wait_listening)

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "haproxy_policy.json")
OPEN = 4  # connections held open for the dump
SEQUENTIAL = 20

CONFIG = """global
  maxconn 100
defaults
  mode tcp
  timeout connect 5s
  timeout client 30s
  timeout server 30s
frontend front
  bind 127.0.0.1:{front}
  default_backend back
backend back
  server only 127.0.0.1:{back}
"""


def backend():
    """A threaded echo backend: each line comes back prefixed with "echo "."""
    srv = socket.create_server(("127.0.0.1", 0))

    def serve(conn):
        with conn, conn.makefile("rb") as lines:
            try:
                for line in lines:
                    conn.sendall(b"echo " + line)
            except OSError:
                pass  # haproxy stopped

    def accept():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return srv


def request(conn, text):
    conn.sendall(text.encode())
    want = b"echo " + text.encode()
    got = b""
    while len(got) < len(want):
        chunk = conn.recv(4096)
        if not chunk:
            break
        got += chunk
    return got == want


def check_dump(pid, env, back_port, requests):
    # The upstream socket of wait_listening's probe connection may still be
    # closing: wait for the ones held open to be all that is left.
    deadline = time.monotonic() + 10
    while True:
        d = dump(pid, "maps", "sockets", "stats", env=env)
        upstream = [s for s in d["sockets"] if s["remote"] == f"127.0.0.1:{back_port}"]
        if len(upstream) == OPEN or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if len(upstream) != OPEN:
        fail(f"dump shows {len(upstream)} upstream sockets, expected {OPEN}: {d['sockets']}")
    states = sorted({s["state"] for s in upstream})
    if states != ["ESTABLISHED"] or not all(s["psock"] for s in upstream):
        fail(f"upstream sockets: {upstream}")
    entries = {e["cookie"]: e for e in next(m for m in d["maps"] if m["name"] == "upstream")["entries"]}
    missing = [s["cookie"] for s in upstream if s["cookie"] not in entries]
    if missing:
        fail(f"upstream sockets {missing} are not in the map: {entries}")
    if any(entries[s["cookie"]]["state"] != "ESTABLISHED" for s in upstream):
        fail(f"map entries: {list(entries.values())}")
    note(f"ok: dump: the {OPEN} open upstream sockets are in the map, ESTABLISHED")
    tx = {p["cookie"]: p["stats"]["tx"] for p in d["psocks"]}
    passed = sorted(tx[s["cookie"]]["passed"] for s in upstream)
    want = sorted(len(r) for r in requests)
    if passed != want or any(tx[s["cookie"]]["in"] != tx[s["cookie"]]["passed"] for s in upstream):
        fail(f"tx passed per upstream socket {passed}, expected {want}: {tx}")
    note(f"ok: dump: each request's bytes went through the sk_msg program (tx passed {passed})")


def run(mode, runtime):
    back = backend()
    back_port = back.getsockname()[1]
    front_port = free_port()
    config = os.path.join(runtime, f"haproxy-{mode}.cfg")
    with open(config, "w") as f:
        f.write(CONFIG.format(front=front_port, back=back_port))
    env = environment(mode, SOCKSHIM_POLICY=POLICY, SOCKSHIM_RUNTIME_DIR=runtime)
    results = []
    argv = ["haproxy", "-db", "-f", config]
    server = types.SimpleNamespace(argv=argv, proc=subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
    try:
        wait_listening(front_port, server)
        conns = [socket.create_connection(("127.0.0.1", front_port), timeout=10)
                 for _ in range(OPEN)]
        requests = [f"held open {i} {'x' * i}\n" for i in range(OPEN)]
        results += [request(c, r) for c, r in zip(conns, requests)]
        if mode == "shim":
            check_dump(server.proc.pid, env, back_port, requests)
        for c in conns:
            c.close()
        for i in range(SEQUENTIAL):
            with socket.create_connection(("127.0.0.1", front_port), timeout=10) as c:
                results.append(request(c, f"request {i}\n"))
    finally:
        server.proc.terminate()
        try:
            _, err = server.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            _, err = server.proc.communicate()
    check_loaded(mode, err.decode(errors="replace"), "haproxy")
    back.close()
    if not all(results):
        fail(f"{mode}: {results.count(False)} of {len(results)} requests got a wrong answer")
    note(f"ok: {mode}: {len(results)} requests through haproxy answered right")


def main():
    if not shutil.which("haproxy"):
        print("SKIP: haproxy is not installed", flush=True)
        sys.exit(77)
    runtime = tempfile.mkdtemp(prefix="sockshim-haproxy-")
    for mode in MODES:
        run(mode, runtime)
    print("PASS haproxy mode tcp", flush=True)


main()
