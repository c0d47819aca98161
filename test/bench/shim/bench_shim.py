"""The shim's cost on real loopback traffic: 1-byte ping-pong round trips per
second and 64 KiB streaming MB/s, each without and with libsockshim.so (no
policy), interleaved (plain, shim, shim, plain, ...) so drift hits both alike.
Prints the medians and their ratio; the target is >= 0.98 on both.

usage: bench_shim.py SHIM_BENCH LIBSOCKSHIM [RUNS]
"""

import os
import statistics
import subprocess
import sys


def measure(bench, library, mode, load, amount):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKSHIM_")}
    env.pop("LD_PRELOAD", None)
    if mode == "shim":
        env["LD_PRELOAD"] = library
    out = subprocess.run([bench, load, str(amount)], env=env, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    return float(out)


def main():
    bench, library = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 9
    loads = [("pingpong", 30000, "round trips/s"), ("stream", 1500, "MB/s")]
    samples = {(load, mode): [] for load, _, _ in loads for mode in ("plain", "shim")}
    for i in range(runs):
        order = ("plain", "shim") if i % 2 == 0 else ("shim", "plain")
        for load, amount, _ in loads:
            for mode in order:
                samples[(load, mode)].append(measure(bench, library, mode, load, amount))
    print(f"{runs} interleaved runs each; medians (min..max)")
    for load, amount, unit in loads:
        plain, shim = samples[(load, "plain")], samples[(load, "shim")]
        ratio = statistics.median(shim) / statistics.median(plain)
        print(f"{load:9} plain {statistics.median(plain):10.1f} ({min(plain):.0f}..{max(plain):.0f})"
              f"  shim {statistics.median(shim):10.1f} ({min(shim):.0f}..{max(shim):.0f})"
              f"  {unit}  ratio {ratio:.3f}")


main()
