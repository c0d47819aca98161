"""Readiness of psocks (poll, ppoll, select, pselect, epoll_wait, epoll_pwait,
epoll_pwait2): readiness_probe runs its checks under the shim once per way
bytes reach a socket's queue: an sk_msg ingress redirect, and the receive
engine's PASS, ingress redirect and DROP verdicts.

usage: test_readiness.py PROBE MODE...
"""

import os
import subprocess
import sys

import harness

HERE = os.path.dirname(os.path.abspath(__file__))


def run(probe, mode):
    policy = os.path.join(HERE, f"readiness_{mode}.json")
    env = harness.environment("shim", SOCKSHIM_POLICY=policy)
    try:
        proc = subprocess.run([probe, mode], env=env, capture_output=True, timeout=150)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        harness.fail(f"{mode}: the probe did not finish within 150 s\n{out[-3000:]}")
    out = proc.stdout.decode(errors="replace")
    err = proc.stderr.decode(errors="replace")
    harness.check_loaded("shim", err, "readiness_probe")
    harness.note(f"--- {mode}\n{out}")
    if proc.returncode != 0 or "PASS" not in out:
        harness.fail(f"{mode}: exited {proc.returncode}\nstderr: {err[-2000:]}")


def main():
    probe, modes = sys.argv[1], sys.argv[2:]
    for mode in modes:
        run(probe, mode)
    harness.note(f"PASS: readiness under {', '.join(modes)}")


if __name__ == "__main__":
    main()
