"""Instructions per call of the sk_msg send and receive paths, counted by
callgrind: sendrecv_loop does N rounds of a 64-byte send and its recv over a
loopback pair, at two values of N; the difference cancels set-up and exit.

Rows: the whole send+recv round (every instruction in user space) without the
shim, with the shim and no policy (pass-through), and under the PASS and
peer-redirect policies; then, for the two policies, the instructions inside
tcp_bpf_sendmsg and tcp_bpf_recvmsg per call (--toggle-collect), the figures
to compare before and after a change to the hot path. Deterministic: the same
build gives the same counts.

usage: callgrind_hot_path.py SENDRECV_LOOP LIBSOCKSHIM POLICY_DIR
"""

import os
import re
import subprocess
import sys
import tempfile

N1, N2 = 2000, 12000


def run(loop, n, preload, policy, toggle):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKSHIM_")}
    env.pop("LD_PRELOAD", None)
    if preload:
        env["LD_PRELOAD"] = preload
    if policy:
        env["SOCKSHIM_POLICY"] = policy
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        if toggle:
            cmd.append(f"--toggle-collect=*{toggle}*")
        p = subprocess.run(cmd + [loop, str(n)], env=env, capture_output=True, text=True,
                           timeout=600, check=True)
        with open(out) as f:
            text = f.read()
    m = re.search(r"sends (\d+) recvs (\d+)", p.stdout)
    total = int(re.search(r"^(?:summary|totals): (\d+)", text, re.M).group(1))
    return total, int(m.group(1)), int(m.group(2))


def per_call(loop, preload, policy, toggle=None, calls_of=None):
    """Instructions per round, or per send (calls_of=1) or recv (2) call."""
    a = run(loop, N1, preload, policy, toggle)
    b = run(loop, N2, preload, policy, toggle)
    calls = b[calls_of] - a[calls_of] if calls_of else N2 - N1
    return (b[0] - a[0]) / calls


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    loop, library, policy_dir = sys.argv[1:]
    policies = [("PASS (bench_pass.json)", os.path.join(policy_dir, "bench_pass.json")),
                ("peer redirect (bench_peer.json)", os.path.join(policy_dir, "bench_peer.json"))]
    print(f"instructions, 64-byte send + recv, N = {N1} and {N2} rounds")
    print("per round (send + recv), whole process:")
    base = per_call(loop, None, None)
    print(f"  {'libc alone':34} {base:8.1f}")
    rows = [("libsockshim, no policy", None)] + policies
    for name, policy in rows:
        cost = per_call(loop, library, policy)
        print(f"  {name:34} {cost:8.1f}  adds {cost - base:8.1f}")
    print("per call, inside the core entry point:")
    for name, policy in policies:
        send = per_call(loop, library, policy, "tcp_bpf_sendmsg", 1)
        recv = per_call(loop, library, policy, "tcp_bpf_recvmsg", 2)
        print(f"  {name:34} tcp_bpf_sendmsg {send:8.1f}  tcp_bpf_recvmsg {recv:8.1f}")


main()
