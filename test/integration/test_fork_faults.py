"""A fork child of a process with a psock must not pay for the psock pool:
every page the shim's fork handlers write is copied in every child
(copy-on-write), which made a fork-per-connection server's children take ~65
more page faults each once a socket was in a map (the pool's 256 psocks,
1 KiB each, all written). fork_faults_probe forks children before and after
putting a UDP socket in a map (dgram_edges.json, with the C API) and prints
the median minor faults a child took until fork() returned in it; with a
psock they must stay within MAX_EXTRA pages of the baseline.

usage: test_fork_faults.py PROBE
"""

import os
import subprocess
import sys

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "dgram_edges.json")
MAX_EXTRA = 16  # the psock itself and its neighbours; the whole pool was 64


def main():
    probe = sys.argv[1]
    env = harness.environment("shim", SOCKSHIM_POLICY=POLICY)
    proc = subprocess.run([probe], env=env, capture_output=True, timeout=60)
    out = proc.stdout.decode(errors="replace")
    err = proc.stderr.decode(errors="replace")
    harness.check_loaded("shim", err, "fork_faults_probe")
    harness.note(out)
    if proc.returncode != 0:
        harness.fail(f"the probe exited {proc.returncode}\nstderr: {err[-2000:]}")
    figures = dict(line.rsplit(" ", 1) for line in out.splitlines())
    baseline, with_psock = int(figures["baseline"]), int(figures["with a psock"])
    if with_psock - baseline > MAX_EXTRA:
        harness.fail(f"a fork child with a psock took {with_psock} page faults before fork() "
                     f"returned, {with_psock - baseline} more than without one "
                     f"(at most {MAX_EXTRA})")
    harness.note(f"PASS: {with_psock} page faults with a psock, {baseline} without")


if __name__ == "__main__":
    main()
