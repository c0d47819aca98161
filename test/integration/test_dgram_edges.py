"""Edges of sockets the receive engine reads, which must look as on a plain
socket: an empty UDP datagram (poll reports it, one 0-byte recvfrom with the
client's address, recvmmsg counts it), and shutdown(SHUT_RD) on a UDP socket
and on a TCP socket with a stream parser (a blocked recv returns 0, poll
reports POLLIN|POLLRDHUP, later reads give 0, a UDP datagram sent afterwards
is still read). dgram_edges_probe runs without the shim, then under
dgram_edges.json (it inserts its own sockets with the C API); both runs must
print the same lines.

usage: test_dgram_edges.py PROBE
"""

import os
import subprocess
import sys

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "dgram_edges.json")
TIMEOUT = 60

# What a plain socket gives (checked, so the probe keeps meaning what it says).
EXPECTED = [
    "empty: poll IN",
    "empty: recvfrom 0 from the client",
    "empty: then poll none",
    "empty: recvmmsg 3: 0 bytes from the client 2 bytes from the client 0 bytes from the client",
    "udp: shutdown(SHUT_RD) -1 Transport endpoint is not connected",
    "udp: blocked recv 0",
    "udp: poll IN RDHUP",
    "udp: recv 0",
    "udp: recv MSG_DONTWAIT -1 EAGAIN",
    "udp: recvfrom after the shutdown 5 from the client",
    "udp: then recv 0",
    "tcp: poll IN",
    "tcp: recv 5",
    "tcp: shutdown(SHUT_RD) 0",
    "tcp: blocked recv 0",
    "tcp: poll IN RDHUP",
    "tcp: recv 0",
    "tcp: recv MSG_DONTWAIT 0",
    "done",
]


def run(probe, mode):
    extra = {"SOCKSHIM_POLICY": POLICY} if mode == "shim" else {}
    env = harness.environment(mode, **extra)
    try:
        proc = subprocess.run([probe], env=env, capture_output=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace")
        harness.fail(f"{mode}: the probe did not finish within {TIMEOUT} s\n{out}")
    out = proc.stdout.decode(errors="replace")
    err = proc.stderr.decode(errors="replace")
    if mode == "shim":
        harness.check_loaded(mode, err, "dgram_edges_probe")
    harness.note(f"--- {mode}\n{out}")
    if proc.returncode != 0:
        harness.fail(f"{mode}: exited {proc.returncode}\nstderr: {err[-2000:]}")
    return out.splitlines()


def main():
    probe = sys.argv[1]
    plain = run(probe, "plain")
    if plain != EXPECTED:
        harness.fail("without the shim the probe printed something else than expected")
    shim = run(probe, "shim")
    for want, got in zip(plain, shim):
        if want != got:
            harness.fail(f"under the shim: {got!r}, without it: {want!r}")
    if len(shim) != len(plain):
        harness.fail(f"under the shim {len(shim)} lines, without it {len(plain)}")
    harness.note("PASS: empty datagrams and SHUT_RD as on plain sockets")


if __name__ == "__main__":
    main()
