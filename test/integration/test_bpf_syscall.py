"""bpf() under the shim: bpf_syscall_probe (maps, their errors, fds, and a
libbpf object through bpf_object__open_file + bpf_object__load) run as an
ordinary user with the shim must pass its own checks and, where the kernel's
bpf() can be used (root), print the same lines as the kernel gives root.

usage: test_bpf_syscall.py PROBE OBJECT   (empty PROBE: libbpf or clang missing, skip)
"""

import difflib
import os
import shutil
import sys

import harness

NOBODY = 65534


def as_ordinary_user(argv):
    """argv run as nobody when the test runs as root, else as it is."""
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"] + argv
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "nobody", "--"] + argv
    harness.note("neither setpriv nor runuser: running as root")
    return argv


def kernel_lines(probe, obj):
    """The probe's lines on the kernel's bpf(), or None where it cannot run."""
    if os.geteuid() != 0:
        return None
    proc = harness.run("plain", [probe, obj, "kernel"], timeout=60, check=False)
    out = proc.stdout.decode()
    if proc.returncode != 0:
        if "sockhash created: FAIL" in out:
            harness.note("the kernel refuses bpf() here: no comparison with it")
            return None
        harness.fail(f"the probe fails on the kernel itself:\n{out}\n{proc.stderr.decode()[-2000:]}")
    return out.splitlines()


def main():
    probe, obj = sys.argv[1], sys.argv[2]
    if not probe or not obj:
        print("libbpf or clang missing: skipped")
        sys.exit(77)
    proc = harness.run("shim", as_ordinary_user([probe, obj, "shim"]), timeout=60, check=False)
    out = proc.stdout.decode()
    if proc.returncode != 0:
        harness.fail(f"under the shim the probe failed:\n{out}\n{proc.stderr.decode()[-3000:]}")
    shim = out.splitlines()
    harness.note(f"ok: {len(shim)} checks pass as an ordinary user under the shim")
    kernel = kernel_lines(probe, obj)
    if kernel is None:
        return
    # The shim run adds the commands it refuses; the rest must match line by line.
    common = shim[:len(kernel)]
    if common != kernel:
        diff = difflib.unified_diff(kernel, common, "kernel (root)", "shim (nobody)", lineterm="")
        harness.fail("the shim's bpf() differs from the kernel's:\n" + "\n".join(diff))
    harness.note(f"ok: {len(kernel)} lines identical to the kernel's bpf() as root")


if __name__ == "__main__":
    main()
