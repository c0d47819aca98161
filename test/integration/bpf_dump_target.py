"""A target (harness.Target) that makes bpf() maps with ctypes, as a loader
would: a SOCKHASH holding one end of a TCP connection, and a HASH with one
element. It prints {"pid", "cookie"} and waits for "exit"."""

import ctypes
import json
import os
import socket
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_bpf = 321  # x86-64
BPF_MAP_CREATE, BPF_MAP_UPDATE_ELEM = 0, 2
BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_SOCKHASH = 1, 18


def bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, len(attr))
    r = libc.syscall(ctypes.c_long(SYS_bpf), ctypes.c_long(cmd), buf, ctypes.c_long(len(attr)))
    if r < 0:
        sys.exit(f"bpf({cmd}): {os.strerror(ctypes.get_errno())}")
    return r


def map_create(map_type, name, key_size, value_size, max_entries):
    return bpf(BPF_MAP_CREATE, struct.pack("<7I16s", map_type, key_size, value_size, max_entries,
                                           0, 0, 0, name.encode()))


def update(fd, key, value):
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value, len(value))
    bpf(BPF_MAP_UPDATE_ELEM, struct.pack("<IIQQQ", fd, 0, ctypes.addressof(k),
                                         ctypes.addressof(v), 0))


listener = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(listener.getsockname())
server, _ = listener.accept()
sockhash = map_create(BPF_MAP_TYPE_SOCKHASH, "conns", 4, 8, 4)
update(sockhash, struct.pack("<I", 7), struct.pack("<Q", server.fileno()))
counts = map_create(BPF_MAP_TYPE_HASH, "counts", 4, 8, 16)
update(counts, struct.pack("<I", 1), struct.pack("<Q", 10))
cookie = struct.unpack("<Q", server.getsockopt(socket.SOL_SOCKET, 57, 8))[0]  # SO_COOKIE
print(json.dumps({"pid": os.getpid(), "cookie": cookie}), flush=True)
for line in sys.stdin:
    if line.strip() == "exit":
        break
