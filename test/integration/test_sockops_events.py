"""The sockops programs run on every socket event a cgroup sock_ops program
sees and the shim can: listen, tcp_connect then active_established (blocking
and non-blocking connect), passive_established at accept, and once at the
close of the last fd (state_change, alias close), in that order per socket."""

import os
import re
import subprocess

from harness import PYTHON, environment, fail, note

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "sockops_events.json")

PROGRAM = r"""
import os, select, socket
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
print("listener", srv.fileno(), flush=True)
blocking = socket.create_connection(srv.getsockname())
nb = socket.socket()
nb.setblocking(False)
try:
    nb.connect(srv.getsockname())
except BlockingIOError:
    pass
select.select([], [nb], [], 5)
if nb.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
    raise SystemExit("non-blocking connect failed")
a1, _ = srv.accept()
a2, _ = srv.accept()
dup = os.dup(a1.fileno())
a1.close()
print("MARK closed one of two fds", file=__import__("sys").stderr, flush=True)
os.close(dup)
for s in (blocking, nb, a2, srv):
    s.close()
"""

# The log action's line: the socket's addresses and cookie, and the fd the
# program ran for when there is one.
LINE = re.compile(r"warn: log: events: (\w+) \(socket (\S+) -> (\S+), cookie (\d+)(?:, fd (\d+))?\)")


def order_with_mark(stderr):
    """The events and the program's mark, in the order they were written."""
    out = []
    for line in stderr.splitlines():
        m = LINE.search(line)
        if m:
            out.append(m.group(1))
        elif line.startswith("MARK"):
            out.append("MARK")
    return " ".join(out)


def main():
    env = environment("shim", SOCKSHIM_POLICY=POLICY)
    proc = subprocess.run([PYTHON, "-c", PROGRAM], env=env, capture_output=True, text=True,
                          timeout=30)
    if proc.returncode != 0:
        fail(f"program exited {proc.returncode}: {proc.stderr[-2000:]}")
    events = {}
    for line in proc.stderr.splitlines():
        m = LINE.search(line)
        if m:
            events.setdefault(m.group(4), []).append((m.group(1), m.group(5)))
            if m.group(1).endswith("established") and not (
                    m.group(2).startswith("127.0.0.1:") and m.group(3).startswith("127.0.0.1:")):
                fail(f"an established socket not named by its addresses: {line!r}")
    seqs = sorted([e for e, _ in evs] for evs in events.values())
    want = sorted([["listen", "close"],
                   ["tcp_connect", "active_established", "close"],
                   ["tcp_connect", "active_established", "close"],
                   ["passive_established", "close"],
                   ["passive_established", "close"]])
    if seqs != want:
        fail(f"events per socket: {seqs}, expected {want}\nstderr:\n{proc.stderr[-3000:]}")
    note("ok: listen, tcp_connect + active_established (blocking and non-blocking), "
         "passive_established, close: once each, in order, per socket")
    closes = [fd for evs in events.values() for e, fd in evs if e == "close"]
    if closes != [None] * 5:
        fail(f"close runs with fds {closes}: expected none (no fd is left)")
    # Closing one of an accepted socket's two fds runs nothing: the close comes
    # when its last fd goes, after the mark.
    if "MARK" not in order_with_mark(proc.stderr):
        fail(f"no mark in stderr:\n{proc.stderr[-3000:]}")
    before = order_with_mark(proc.stderr).split("MARK")[0].split()
    if "close" in before:
        fail(f"a close ran before the last fd of a socket went: {before}")
    note("ok: close runs once per socket, when its last fd goes")
    print("PASS sockops events")


main()
