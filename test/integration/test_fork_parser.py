"""Fork-per-connection servers under a parser policy (sockops put every
accepted socket in a sockhash whose stream parser and verdict pass every
frame; recv_pass.json), 50 clients at once: `socat TCP-LISTEN,fork
EXEC:cat,nofork` (the fork child execs cat with the socket on fds 0 and 1)
and a Python server whose fork child echoes. The parent's receive engine
starts on the socket at accept, before the fork (and the exec): every
client must still get all its bytes back, as without the shim.

A client whose handshake met a full backlog may wait for a SYN
retransmission on this loaded machine, so each is given 70 s."""

import collections
import os
import socket
import subprocess
import sys
import tempfile
import threading
import types

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "recv_pass.json")
SERVER = os.path.join(HERE, "fork_echo_server.py")
CLIENTS = 50
CLIENT_TIMEOUT = 70  # s


def client(port, i, start, results):
    message = f"client {i:02d} ".encode() * 200
    start.wait()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as s:
            s.sendall(message)
            got = b""
            while len(got) < len(message):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        results[i] = "served" if got == message else f"got {len(got)} of {len(message)} bytes"
    except OSError as e:
        results[i] = type(e).__name__


def run(server, mode, directory):
    port = harness.free_port()
    env = harness.environment(mode)
    if mode == "shim":
        env.update(SOCKSHIM_POLICY=POLICY, SOCKSHIM_RUNTIME_DIR=os.path.join(directory, "run"))
    argv = {"socat": ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr",
                      "EXEC:cat,nofork"],
            "python": [harness.PYTHON, SERVER, str(port)]}[server]
    log_path = os.path.join(directory, f"{server}-{mode}.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        harness.wait_listening(port, types.SimpleNamespace(proc=proc, argv=argv))
        results = [None] * CLIENTS
        start = threading.Barrier(CLIENTS)
        threads = [threading.Thread(target=client, args=(port, i, start, results))
                   for i in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(CLIENT_TIMEOUT + 10)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with open(log_path, encoding="utf-8", errors="replace") as f:
        stderr = f.read()
    harness.check_loaded(mode, stderr, server)
    counts = collections.Counter(r or "no answer" for r in results)
    harness.note(f"{server}, {mode}: {dict(counts)}")
    if counts["served"] != CLIENTS:
        harness.fail(f"{server}, {mode}: {CLIENTS - counts['served']} of {CLIENTS} clients not "
                     f"served: {dict(counts)}")
    return counts["served"]


def main():
    server = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="sockshim-fork-parser-") as directory:
        results = {mode: run(server, mode, directory) for mode in harness.MODES}
    harness.same_in_both(results, f"{server}: clients served, {CLIENTS} at once")


main()
