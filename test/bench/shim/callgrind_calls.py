"""User-space instructions per socket call, counted by callgrind: one process
does N rounds of (send, recv, send, recv) of 1 byte over a loopback connection
to itself, at two values of N; the difference cancels start-up and exit.

Rows: libc alone, libc with libsockshim.so (no policy; and with a policy when
one is given), and socket_wrapper (Debian's libsocket-wrapper, preloaded
without SOCKET_WRAPPER_DIR: its pass-through mode) as a reference. Each in a
single-threaded process ("calls") and with an idle second thread ("calls-mt"):
glibc skips its cancellation bookkeeping only while a process has one thread.

usage: callgrind_calls.py SHIM_BENCH LIBSOCKSHIM [POLICY]
"""

import os
import re
import subprocess
import sys
import tempfile

N1, N2 = 2000, 12000
CALLS_PER_ROUND = 4
SOCKET_WRAPPER = "/usr/lib/x86_64-linux-gnu/libsocket_wrapper.so"


def instructions(bench, load, n, preload, extra_env):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SOCKSHIM_", "SOCKET_WRAPPER"))}
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    env.update(extra_env)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", bench,
                        load, str(n)], env=env, capture_output=True, timeout=600, check=True)
        with open(out) as f:
            text = f.read()
    return int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))


def per_call(bench, load, preload, extra_env):
    a = instructions(bench, load, N1, preload, extra_env)
    b = instructions(bench, load, N2, preload, extra_env)
    return (b - a) / ((N2 - N1) * CALLS_PER_ROUND)


def main():
    bench, library = sys.argv[1], sys.argv[2]
    configs = [("libc alone", None, {}), ("libsockshim, no policy", library, {})]
    if len(sys.argv) > 3:
        configs.append(("libsockshim, policy not touching the socket", library,
                        {"SOCKSHIM_POLICY": os.path.abspath(sys.argv[3])}))
    if os.path.exists(SOCKET_WRAPPER):
        configs.append(("socket_wrapper (pass-through)", SOCKET_WRAPPER, {}))
    print(f"instructions per call (send/recv), N = {N1} and {N2} rounds of {CALLS_PER_ROUND} calls")
    for load, title in (("calls", "one thread"), ("calls-mt", "two threads")):
        print(f"{title}:")
        base = None
        for name, preload, extra in configs:
            cost = per_call(bench, load, preload, extra)
            base = cost if base is None else base
            added = "" if preload is None else f"  adds {cost - base:6.1f}"
            print(f"  {name:46} {cost:6.1f}{added}")


main()
