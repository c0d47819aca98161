"""A fork child of a process with a psock must not pay for the psock pool:
every page the shim's fork handlers write is copied in every child
(copy-on-write), which made a fork-per-connection server's children take ~65
more page faults each once a socket was in a map (the pool's 256 psocks,
1 KiB each, all written). Nor should the process touch the whole pool for its
first psock: every page it has written is one more page table entry each
fork copies. fork_faults_probe forks children before and after putting a UDP
socket in a map (dgram_edges.json, with the C API) and prints the median
minor faults a child took until fork() returned in it, and the faults the
insertion took: with a psock a child stays within MAX_EXTRA pages of the
baseline, and the insertion within MAX_INSERT pages.

usage: test_fork_faults.py PROBE
"""

import os
import subprocess
import sys

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "dgram_edges.json")
MAX_EXTRA = 16  # the psock itself and its neighbours; the whole pool was 64
MAX_INSERT = 24  # the map entry, the psock, its counters; the pool was 64 more


def main():
    probe = sys.argv[1]
    # At the default log level: an info line runs code (and maps pages of it)
    # that the insertion would be charged for. The probe fails when it finds
    # no C API under a policy, so the shim is known to be loaded.
    env = harness.environment("shim", SOCKSHIM_POLICY=POLICY, SOCKSHIM_LOG="warn")
    # meson test sets it: malloc would then write every page it hands out.
    env.pop("MALLOC_PERTURB_", None)
    proc = subprocess.run([probe], env=env, capture_output=True, timeout=60)
    out = proc.stdout.decode(errors="replace")
    err = proc.stderr.decode(errors="replace")
    harness.note(out)
    if proc.returncode != 0:
        harness.fail(f"the probe exited {proc.returncode}\nstderr: {err[-2000:]}")
    figures = dict(line.rsplit(" ", 1) for line in out.splitlines())
    baseline, with_psock = int(figures["baseline"]), int(figures["with a psock"])
    insertion = int(figures["the insertion"])
    if insertion > MAX_INSERT:
        harness.fail(f"putting the first socket in a map took {insertion} page faults "
                     f"(at most {MAX_INSERT})")
    if with_psock - baseline > MAX_EXTRA:
        harness.fail(f"a fork child with a psock took {with_psock} page faults before fork() "
                     f"returned, {with_psock - baseline} more than without one "
                     f"(at most {MAX_EXTRA})")
    harness.note(f"PASS: {with_psock} page faults in a child with a psock, {baseline} without; "
                 f"{insertion} for the insertion")


if __name__ == "__main__":
    main()
