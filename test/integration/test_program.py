"""Runs one of the test programs without and with the shim: both runs must exit
0 and print the same report.

usage: test_program.py PROGRAM [ARGS...]
"""

import sys

import harness


def main():
    argv = sys.argv[1:]
    results = {}
    for mode in harness.MODES:
        proc = harness.run(mode, argv, timeout=150)
        results[mode] = proc.stdout.decode()
        harness.note(f"ok: {mode}: {proc.stderr.decode().strip().splitlines()[-1:]}")
    harness.same_in_both(results, "the report")
    harness.note(results["shim"].rstrip())


main()
