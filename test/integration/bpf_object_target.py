"""Traffic for test_bpf_object.py, run under the shim with a policy that has
maps `socks` (an sk_msg verdict) and `rx` (a stream parser and verdict). Two
connections over 127.0.0.1:

  a  its client end in socks[0] sends "Pone", "Dtwo", "Pthree": the peer
     reads what passed until EOF; each send's result is recorded
  r  its accepted end in rx[0], read by the receive engine: the client sends
     three frames (a length byte, then the payload) at once, the middle one
     starting with X; the reader reads until it has two frames' bytes, then
     until EOF

Prints one JSON line: the send results and what each reader got (hex).
"""

import ctypes
import json
import socket
import sys

lib = ctypes.CDLL(None)


def insert(map_name, index, sock):
    r = lib.sockshim_map_update_elem(map_name.encode(), ctypes.byref(ctypes.c_uint32(index)),
                                     ctypes.byref(ctypes.c_uint64(sock.fileno())),
                                     ctypes.c_uint64(0))
    if r != 0:
        sys.exit(f"sockshim_map_update_elem({map_name}, {index}) = {r}")


def pair():
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    c = socket.create_connection(srv.getsockname(), timeout=10)
    s, _ = srv.accept()
    s.settimeout(10)
    srv.close()
    return c, s


def read_to_eof(s):
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return got
        got += chunk


out = {}
a, a_peer = pair()
insert("socks", 0, a)
results = []
for m in (b"Pone", b"Dtwo", b"Pthree"):
    try:
        results.append(a.send(m))
    except OSError as e:
        results.append(f"errno {e.errno}")
out["sends"] = results
a.close()
out["a_peer"] = read_to_eof(a_peer).hex()

r_client, r = pair()
insert("rx", 0, r)
r_client.sendall(b"\x05hello\x04Xbad\x05world")
got = b""
while len(got) < 12:
    chunk = r.recv(65536)
    if not chunk:
        break
    got += chunk
r_client.close()
got += read_to_eof(r)
out["r"] = got.hex()
print(json.dumps(out, sort_keys=True), flush=True)
