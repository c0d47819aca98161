"""hooks_probe with and without the shim: every line it prints (return values,
errno names, fd numbers, received bytes) must be identical.

usage: test_probe.py PROBE all|errors
"""

import difflib
import subprocess
import sys

import harness

# A program built with _FORTIFY_SOURCE calls these instead of the plain names;
# the probe must really reference them, or the test proves nothing about them.
FORTIFIED = ["__read_chk", "__recv_chk", "__recvfrom_chk", "__poll_chk", "__ppoll_chk"]


def undefined_symbols(path):
    out = subprocess.run(["nm", "-D", "--undefined-only", path], capture_output=True,
                         text=True, check=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


def main():
    probe, what = sys.argv[1], sys.argv[2]
    if what == "all":
        refs = undefined_symbols(probe)
        missing = [name for name in FORTIFIED + ["read", "recv", "recvfrom", "poll", "ppoll"]
                   if name not in refs]
        if missing:
            harness.fail(f"{probe} does not reference {missing}")
        harness.note(f"ok: the probe references {', '.join(FORTIFIED)} and the plain names")

    outputs = {}
    for mode in harness.MODES:
        proc = harness.run(mode, [probe, what], timeout=60)
        outputs[mode] = proc.stdout.decode()
    if outputs["plain"] != outputs["shim"]:
        diff = difflib.unified_diff(outputs["plain"].splitlines(), outputs["shim"].splitlines(),
                                    "without the shim", "with the shim", lineterm="")
        harness.fail("the probe's output differs:\n" + "\n".join(diff))
    lines = outputs["plain"].count("\n")
    harness.note(f"ok: {lines} lines identical with and without the shim")


main()
