"""The user-space example of the kernel's Documentation/bpf/map_sockmap.rst
(sockmap_example: create_sample_sockmap with libbpf's low-level API, a
clang-built parser and verdict, bytes passed, dropped and redirected; the
attach and detach errnos; a sockops program attached to a cgroup fd) run
unmodified as an ordinary user under the shim: as nobody when the test runs
as root, else as the user running it.

usage: test_sockmap_example.py PROGRAM OBJECT   (empty: libbpf or clang missing, skip)
"""

import os
import sys

import harness
from test_bpf_syscall import as_ordinary_user


def main():
    program, obj = sys.argv[1], sys.argv[2]
    if not program or not obj:
        print("libbpf or clang missing: skipped")
        sys.exit(77)
    cgroup = "/sys/fs/cgroup" if os.path.isdir("/sys/fs/cgroup") else "/"
    proc = harness.run("shim", as_ordinary_user([program, obj, cgroup]), timeout=60, check=False)
    out = proc.stdout.decode()
    if proc.returncode != 0:
        harness.fail(f"under the shim the example failed:\n{out}\n{proc.stderr.decode()[-3000:]}")
    harness.note(f"ok: {len(out.splitlines())} checks pass as an ordinary user under the shim")


main()
