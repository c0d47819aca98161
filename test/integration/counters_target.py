"""Traffic with known byte counts for test_counters.py, run under the shim with
counters_policy.json. Connections over 127.0.0.1, each client end put into a
map through the C API:

  a   socks[0]  the mixed traffic (P, D, E, I, U, O messages)
  b   socks[1]  the egress redirect target: its peer reads what a redirected
  c   socks[2]  the ingress redirect target: the accepted end, read from its queue
  k   socks[3]  corked sends (C)
  n   socks[4]  a non-blocking sender whose peer does not read: partial sends
  s   sticky[0] pass, then a drop that sticks
  z   plain[0]  sendfile, zero-copy
  r   rx[0]     the accepted end, read by the receive engine: its client sends
                frames (P, D, E, I), its reader reads what passed
  re  rx[1]     the egress redirect target of r's frames: its peer reads
  ri  rx[2]     the ingress redirect target of r's frames (an accepted end)

Commands on stdin, one JSON line answered on stdout each:
  fixed    the fixed sequence; answers the bytes sent, what each reader got,
           the cookies, and what stays held
  flush    completes the cork; answers the same
  rx       frames to r, and a frame cut short (404 of its 1004 bytes); answers
           the same
  rxfinish the rest of that frame
  stream   starts senders on a (random mix), k (corked) and r's client (random
           frames) that run until stop
  stop     stops them, drains the readers; answers the totals
  exit
"""

import ctypes
import json
import os
import random
import socket
import struct
import sys
import tempfile
import threading
import time

SO_COOKIE = 57
lib = ctypes.CDLL(None)


def cookie(s):
    return int.from_bytes(s.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8), "little")


def insert(map_name, index, sock):
    r = lib.sockshim_map_update_elem(map_name.encode(), ctypes.byref(ctypes.c_uint32(index)),
                                     ctypes.byref(ctypes.c_uint64(sock.fileno())),
                                     ctypes.c_uint64(0))
    if r != 0:
        raise SystemExit(f"map update {map_name}[{index}]: {r}")


listener = socket.create_server(("127.0.0.1", 0))


def pair():
    c = socket.create_connection(listener.getsockname())
    s, _ = listener.accept()
    return c, s


a, a_peer = pair()
b, b_peer = pair()
c_client, c = pair()
k, k_peer = pair()
n, n_peer = pair()
s, s_peer = pair()
z, z_peer = pair()
n.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
n_peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
for i, sock in enumerate((a, b, c, k, n)):
    insert("socks", i, sock)
insert("sticky", 0, s)
insert("plain", 0, z)
r_client, r = pair()
re, re_peer = pair()
ri_client, ri = pair()
for i, sock in enumerate((r, re, ri)):
    insert("rx", i, sock)


class Reader(threading.Thread):
    """Counts what arrives on a socket (its TCP bytes, or its ingress queue)."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.sock, self.got, self.lock = sock, 0, threading.Lock()
        self.start()

    def run(self):
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                self.got += len(data)

    def total(self):
        with self.lock:
            return self.got


readers = {name: Reader(sock) for name, sock in
           (("a", a_peer), ("b", b_peer), ("c", c), ("k", k_peer), ("s", s_peer),
            ("z", z_peer), ("r", r), ("re", re_peer), ("ri", ri))}


def wait_readers(expect, timeout=10):
    """Waits until each reader got at least what is expected of it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(readers[r].total() >= v for r, v in expect.items()):
            return
        time.sleep(0.01)


sent = {"a": 0, "k": 0, "n": 0, "s": 0, "z": 0, "r": 0}
expect = {"a": 0, "b": 0, "c": 0, "k": 0, "s": 0, "z": 0, "dropped_a": 0, "dropped_s": 0,
          "pushed_a": 0, "popped_a": 0, "passed_n": 0, "held_k": 0, "eacces": 0,
          "r": 0, "re": 0, "ri": 0, "dropped_r": 0, "held_r": 0}


def send_a(kind, size):
    """One message of size bytes on a, starting with kind; books what it should do."""
    msg = kind.encode() + b"x" * (size - 1)
    try:
        r = a.send(msg)
    except PermissionError:
        r = 0
        expect["eacces"] += 1
    if kind != "D" and r != size:
        raise SystemExit(f"send {kind}: {r} of {size}")
    sent["a"] += size
    if kind == "P":
        expect["a"] += size
    elif kind == "D":
        expect["dropped_a"] += size
    elif kind == "E":
        expect["b"] += size
    elif kind == "I":
        expect["c"] += size
    elif kind == "U":
        expect["a"] += size + 3
        expect["pushed_a"] += 3
    elif kind == "O":
        expect["a"] += size - 1
        expect["popped_a"] += 1


def fixed():
    for kind, size in (("P", 1000), ("D", 700), ("E", 1500), ("I", 2500), ("U", 100),
                       ("O", 100), ("P", 200000), ("E", 70000), ("I", 90000), ("D", 5)):
        send_a(kind, size)
    # Corked: 4 of the 10 sends that make the cork full.
    for _ in range(4):
        if k.send(b"C" * 1000) != 1000:
            raise SystemExit("corked send")
        sent["k"] += 1000
    expect["held_k"] = 4000
    # The non-blocking sender: its peer reads nothing, so sends come back
    # short and then fail with EAGAIN; only what went counts.
    n.setblocking(False)
    block = b"P" * 65536
    for _ in range(200):
        try:
            r = n.send(block)
        except BlockingIOError:
            break
        sent["n"] += r
    expect["passed_n"] = sent["n"]
    # Sticky: a pass, a drop, and a pass that the drop now fails.
    for msg in (b"P" * 300, b"D" * 400, b"P" * 500):
        try:
            s.send(msg)
        except PermissionError:
            expect["dropped_s"] += len(msg)
        sent["s"] += len(msg)
    expect["s"] = sent["s"] - expect["dropped_s"]
    # sendfile: the route program reads data (copied), plain does not (zero-copy).
    with tempfile.TemporaryFile() as f:
        f.write(b"P" * 300000)
        f.flush()
        for sock, name in ((a, "a"), (z, "z")):
            done = 0
            while done < 300000:
                done += os.sendfile(sock.fileno(), f.fileno(), done, 300000 - done)
            sent[name] += done
            expect[name] += done
    wait_readers({r: expect[r] for r in ("a", "b", "c", "s", "z")})
    return report()


def flush():
    for _ in range(6):
        k.send(b"C" * 1000)
        sent["k"] += 1000
    expect["k"] = 10000
    expect["held_k"] = 0
    wait_readers({"k": 10000})
    return report()


def frame(kind, size):
    """A frame of size bytes in all: the length of the rest, kind, filler."""
    return struct.pack(">I", size - 4) + kind.encode() + b"f" * (size - 5)


def rx():
    book = {"P": "r", "D": "dropped_r", "E": "re", "I": "ri"}
    for kind, size in (("P", 100), ("D", 2000), ("E", 30000), ("I", 50000), ("P", 70000),
                       ("D", 5), ("E", 6), ("I", 7)):
        r_client.sendall(frame(kind, size))
        sent["r"] += size
        expect[book[kind]] += size
    wait_readers({x: expect[x] for x in ("r", "re", "ri")})
    partial = frame("P", 1004)[:404]
    r_client.sendall(partial)
    sent["r"] += len(partial)
    expect["held_r"] = len(partial)
    return report()


def rx_finish():
    r_client.sendall(frame("P", 1004)[404:])
    sent["r"] += 600
    expect["r"] += 1004
    expect["held_r"] = 0
    wait_readers({"r": expect["r"]})
    return report()


def report():
    return {"sent": sent, "expect": expect,
            "got": {r: readers[r].total() for r in readers},
            "cookies": {name: cookie(sock) for name, sock in
                        (("a", a), ("b", b), ("c", c), ("k", k), ("n", n), ("s", s), ("z", z),
                         ("r", r), ("re", re), ("ri", ri))}}


stop = threading.Event()
stream_threads = []


def stream_a():
    rng = random.Random(7)
    while not stop.is_set():
        send_a(rng.choice("PPPDEIUO"), rng.choice((1, 10, 100, 1000, 4096, 40000)))


def stream_r():
    rng = random.Random(11)
    book = {"P": "r", "D": "dropped_r", "E": "re", "I": "ri"}
    while not stop.is_set():
        kind, size = rng.choice("PPDEI"), rng.choice((5, 100, 3000, 60000))
        r_client.sendall(frame(kind, size))
        sent["r"] += size
        expect[book[kind]] += size


def stream_k():
    while not stop.is_set():
        k.send(b"C" * 333)
        sent["k"] += 333
        time.sleep(0.001)


for line in sys.stdin:
    cmd = line.strip()
    if cmd == "fixed":
        out = fixed()
    elif cmd == "flush":
        out = flush()
    elif cmd == "rx":
        out = rx()
    elif cmd == "rxfinish":
        out = rx_finish()
    elif cmd == "stream":
        stream_threads = [threading.Thread(target=f) for f in (stream_a, stream_k, stream_r)]
        for t in stream_threads:
            t.start()
        out = {"streaming": True}
    elif cmd == "stop":
        stop.set()
        for t in stream_threads:
            t.join()
        wait_readers({r: expect[r] for r in ("a", "b", "c", "r", "re", "ri")})
        out = report()
    else:
        break
    print(json.dumps(out), flush=True)
