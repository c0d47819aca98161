"""asyncio echo (non-blocking sockets, epoll) in one process under the peer
acceleration policy: the sockets that enter the sockhash run the sk_msg
program on every send and read their ingress queue first; the echoed bytes
must be the bytes sent, as without the shim, and nothing may hang.
"""

import os
import subprocess

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "..", "..", "policy", "examples", "peer_acceleration.json")


def scenario(mode):
    env = harness.environment(mode, SOCKSHIM_POLICY=POLICY)
    try:
        proc = subprocess.run([harness.PYTHON, os.path.join(HERE, "send_asyncio_peer.py")],
                              env=env, capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        harness.fail(f"{mode}: the asyncio echo did not finish within 30 s")
    err = proc.stderr.decode(errors="replace")
    harness.check_loaded(mode, err, "python3")
    if proc.returncode != 0:
        harness.fail(f"{mode}: exited {proc.returncode}: {err[-2000:]}")
    got, sent = proc.stdout.decode().split()
    if got != sent:
        harness.fail(f"{mode}: echoed bytes differ from the sent bytes")
    return got


def main():
    plain = scenario("plain")
    for _ in range(3):
        if scenario("shim") != plain:
            harness.fail("different bytes under the shim")
    harness.note("PASS: asyncio echo under the peer policy, 3 runs, same bytes as without the shim")


if __name__ == "__main__":
    main()
