"""The host's latency while its control socket is busy, not a test: runs the
ping-pong traffic of test/integration/control_stress.py under the shim (with a
policy, so the client end is a psock), several rounds of 3 s quiet and 3 s with
control requests hammering it (1000 dumps in a row, then 50 at once, repeated),
interleaved, and prints the median round-trip latency of each and their ratio.
Usage: bench_control.py SOCKSHIM STRESS_PY POLICY"""

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sockshim, stress, policy = sys.argv[1:4]
ROUNDS, SECONDS = 5, 3.0


def request(path):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(b'{"version":1,"command":"dump"}\n')
        while not s.recv(1 << 20).endswith(b"\n"):
            pass


def hammer(path, until):
    n = 0
    while time.monotonic() < until:
        for _ in range(1000):
            request(path)
            n += 1
            if time.monotonic() >= until:
                return n
        threads = [threading.Thread(target=request, args=(path,)) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        n += 50
    return n


def one_round(busy):
    runtime = tempfile.mkdtemp(prefix="sockshim-bench-")
    env = dict(os.environ, SOCKSHIM_RUNTIME_DIR=runtime)
    proc = subprocess.Popen([sockshim, "run", "-p", policy, "--", sys.executable, stress],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    pid = int(proc.stdout.readline())
    until = time.monotonic() + SECONDS
    requests = hammer(os.path.join(runtime, f"{pid}.sock"), until) if busy else 0
    time.sleep(max(0.0, until - time.monotonic()))
    proc.stdin.close()
    result = json.loads(proc.stdout.readline())
    proc.wait()
    assert result["sent"] == result["received"], "bytes lost"
    return statistics.median(result["latencies"]), requests


quiet, busy, served = [], [], 0
for _ in range(ROUNDS):
    quiet.append(one_round(False)[0])
    latency, n = one_round(True)
    busy.append(latency)
    served += n
q, b = statistics.median(quiet), statistics.median(busy)
print(f"round-trip latency, median of {ROUNDS} rounds of {SECONDS:.0f} s:")
print(f"  quiet control socket: {q:.1f} us")
print(f"  busy control socket:  {b:.1f} us  ({served} requests answered, every byte arrived)")
print(f"  ratio busy/quiet:     {b / q:.3f}  (target <= 1.10)")
