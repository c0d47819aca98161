"""socat TCP-LISTEN,fork (default backlog 5) echoing through `cat` under a sockops +
sk_msg policy, hit by 50 clients at once, twice: every client gets its own bytes
back, none is reset, as without the shim. A slow accept, fork and first byte
overflows the backlog (issue 11 saw 28 of 50 reset).

A client whose handshake met a full backlog waits for a retransmission: on this
loaded 2-core machine some waited 31 s even without the shim. So a client is
given 70 s, beyond the kernel's last SYN-ACK retransmission (1+2+4+8+16+32 s),
after which a connection the server never took is reset.
"""

import collections
import os
import socket
import subprocess
import tempfile
import threading
import time
import types

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "fork_server_policy.json")
CLIENTS = 50
BURSTS = 2
CLIENT_TIMEOUT = 70  # s


def client(port, i, start, results):
    message = f"client {i:02d} ".encode() * 20
    start.wait()
    t0 = time.monotonic()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as s:
            s.sendall(message)
            got = b""
            while len(got) < len(message):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        outcome = "served" if got == message else f"got {len(got)} of {len(message)} bytes"
    except OSError as e:
        outcome = type(e).__name__
    results[i] = (outcome, time.monotonic() - t0)


def burst(port):
    results = [None] * CLIENTS
    start = threading.Barrier(CLIENTS)
    threads = [threading.Thread(target=client, args=(port, i, start, results))
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(CLIENT_TIMEOUT + 10)
    return [r if r else ("no answer", CLIENT_TIMEOUT) for r in results]


def run(mode, directory):
    port = harness.free_port()
    env = harness.environment(mode)
    if mode == "shim":
        env.update(SOCKSHIM_POLICY=POLICY, SOCKSHIM_RUNTIME_DIR=os.path.join(directory, "run"))
    argv = ["socat", f"TCP-LISTEN:{port},bind=127.0.0.1,fork,reuseaddr", "EXEC:cat"]
    # The log goes to a file: every process logs at info, and a pipe nobody
    # reads until the end would fill and block them.
    log_path = os.path.join(directory, f"{mode}.log")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        harness.wait_listening(port, types.SimpleNamespace(proc=proc, argv=argv))
        outcomes = []
        for _ in range(BURSTS):
            outcomes += burst(port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with open(log_path, encoding="utf-8", errors="replace") as f:
        stderr = f.read()
    harness.check_loaded(mode, stderr, "socat")
    if mode == "shim" and "policy " + POLICY + " loaded" not in stderr:
        harness.fail(f"shim: the policy was not loaded (log: {stderr[-1000:]!r})")
    counts = collections.Counter(o for o, _ in outcomes)
    slowest = max(t for _, t in outcomes)
    harness.note(f"{mode}: {dict(counts)}; slowest client {slowest:.2f} s")
    if counts["served"] != len(outcomes):
        harness.fail(f"{mode}: {len(outcomes) - counts['served']} of {len(outcomes)} clients "
                     f"not served: {dict(counts)}")
    return counts["served"]


def main():
    with tempfile.TemporaryDirectory(prefix="sockshim-fork-burst-") as directory:
        results = {mode: run(mode, directory) for mode in harness.MODES}
    harness.same_in_both(results, f"clients served ({BURSTS} bursts of {CLIENTS})")


main()
