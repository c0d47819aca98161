"""One bpf() conformance row: the same libbpf loader and the same clang-built
object run as root on the kernel's bpf() and as nobody under the shim; the
two transcripts (every libbpf call's result and errno, every send's result,
every reader's bytes and end, the program's counters) must be identical.

usage: test_bpf_rows.py LOADER OBJECT LIBSOCKSHIM ROW [--known-gap=LINE]
  An empty LOADER: libbpf or clang missing, skip (77). Not root: skip (77),
  the kernel's side needs bpf() and the shim's side runs as nobody.
  --known-gap: the row is known to differ under the shim, and LINE is the
  shim's transcript line that shows the gap (meson expects this test to fail:
  exit 1). Once the transcripts match it exits 0, which meson reports as an
  unexpected pass, so that the gap is removed from meson.build; a difference
  without LINE is a different failure: exit 99, an error even for meson.
"""

import difflib
import os
import shutil
import sys

NOBODY = 65534


def skip(why):
    print(f"SKIP: {why}", flush=True)
    sys.exit(77)


def as_nobody(argv):
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"] + argv
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "nobody", "--"] + argv
    skip("neither setpriv nor runuser to run the shim's side as nobody")


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--known-gap=")]
    gaps = [a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--known-gap=")]
    if len(args) != 4 or not args[0]:
        skip("libbpf or clang missing: the bpf() rows are not built")
    loader, obj, library, row = args
    if os.geteuid() != 0:
        skip("not root: the kernel's side needs bpf() as root")
    os.environ["SOCKSHIM_LIBRARY"] = library
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "integration"))
    import harness  # noqa: E402 (reads SOCKSHIM_LIBRARY)

    probe = harness.run("plain", [loader, "--probe"], timeout=30, check=False)
    if probe.returncode == 77:
        skip(probe.stdout.decode().strip() + " (the kernel's side needs bpf() as root)")

    kernel = harness.run("plain", [loader, row, obj, "--cgroup=new"], timeout=300)
    kernel_lines = kernel.stdout.decode().splitlines()
    if "bpf_object__load: 0" not in kernel_lines:
        harness.fail(f"{obj} does not load on the kernel:\n" + "\n".join(kernel_lines) +
                     "\n" + kernel.stderr.decode()[-3000:])
    still_open = [line for line in kernel_lines if line.endswith('" open') or ":open" in line]
    if still_open:
        harness.fail("the row leaves readers open on the kernel: " + "; ".join(still_open))

    shim = harness.run("shim", as_nobody([loader, row, obj, "--cgroup=own"]), timeout=300)
    shim_lines = shim.stdout.decode().splitlines()

    print("\n".join(kernel_lines), flush=True)
    if kernel_lines == shim_lines:
        if gaps:
            harness.note(f"the known gap is gone ({gaps[0]}): remove it from meson.build")
        else:
            harness.note(f"ok: {row}: {len(kernel_lines)} lines identical on the kernel (root) "
                         "and under the shim (nobody)")
        return
    diff = "\n".join(difflib.unified_diff(kernel_lines, shim_lines, "kernel (root)",
                                          "shim (nobody)", lineterm=""))
    if gaps and gaps[0] in shim_lines:
        harness.note(f"known gap, as expected: {gaps[0]}\n{diff}")
        sys.exit(1)
    if gaps:
        print(f"FAIL: {row} differs under the shim, but not by its known gap "
              f"({gaps[0]}):\n{diff}", flush=True)
        sys.exit(99)
    harness.fail(f"{row} differs under the shim:\n{diff}\n"
                 f"shim stderr:\n{shim.stderr.decode(errors='replace')[-3000:]}")


main()
