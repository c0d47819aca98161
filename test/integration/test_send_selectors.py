"""Local peer acceleration: a Python program with two connections in one
process, a sockhash "peer" ingress redirect (policy/examples/peer_acceleration
.json), and selectors (epoll) reading. The bytes each socket reads are the same
with and without the shim; under the shim nothing crosses TCP (no socket
received a byte over TCP), without it everything does.
"""

import json
import os
import subprocess

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "..", "..", "policy", "examples", "peer_acceleration.json")


def scenario(mode):
    env = harness.environment(mode, SOCKSHIM_POLICY=POLICY)
    try:
        proc = subprocess.run([harness.PYTHON, os.path.join(HERE, "send_peer_selectors.py")],
                              env=env, capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        harness.fail(f"{mode}: the selectors program did not finish within 60 s")
    err = proc.stderr.decode(errors="replace")
    harness.check_loaded(mode, err, "python3")
    if proc.returncode != 0:
        harness.fail(f"{mode}: exited {proc.returncode}: {err[-2000:]}")
    return json.loads(proc.stdout)


def main():
    plain = scenario("plain")
    shim = scenario("shim")
    harness.note(f"plain: {plain}")
    harness.note(f"shim:  {shim}")
    if shim["selector"] != "EpollSelector":
        harness.fail(f"expected the epoll selector, got {shim['selector']}")
    if plain["received"] != shim["received"]:
        harness.fail("the sockets read different bytes with and without the shim")
    if "ok=True" not in shim["received"]["server1"]:
        harness.fail("the 300000-byte message did not arrive intact")
    if any(v == 0 for v in plain["tcp_bytes_received"].values()):
        harness.fail("without the shim every socket should receive over TCP")
    if any(v != 0 for v in shim["tcp_bytes_received"].values()):
        harness.fail(f"under the shim bytes crossed TCP: {shim['tcp_bytes_received']}")
    harness.note("PASS: peer ingress redirect read through selectors, nothing crossed TCP")


if __name__ == "__main__":
    main()
