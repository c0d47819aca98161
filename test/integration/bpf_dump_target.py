"""A target (harness.Target) that makes bpf() maps with ctypes, as a loader
would: a SOCKHASH holding one end of a TCP connection, a HASH with one
element, and a SOCKMAP with an SK_MSG program (pass_all) and an SK_SKB one
(skb_drop, as an skb verdict) attached. It prints {"pid", "cookie"} and waits
for "exit"."""

import ctypes
import json
import os
import socket
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_bpf = 321  # x86-64
BPF_MAP_CREATE, BPF_MAP_UPDATE_ELEM, BPF_PROG_LOAD, BPF_PROG_ATTACH = 0, 2, 5, 8
BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_SOCKMAP, BPF_MAP_TYPE_SOCKHASH = 1, 15, 18
BPF_PROG_TYPE_SK_SKB, BPF_PROG_TYPE_SK_MSG = 14, 16
BPF_SK_MSG_VERDICT, BPF_SK_SKB_VERDICT = 7, 38


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


def prog_load(prog_type, name, r0):
    """A program of two instructions: r0 = r0; exit."""
    insns = ctypes.create_string_buffer(struct.pack("<BBhi", 0xb7, 0, 0, r0) +
                                        struct.pack("<BBhi", 0x95, 0, 0, 0))
    license = ctypes.create_string_buffer(b"GPL")
    # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf,
    # kern_version, prog_flags, prog_name
    return bpf(BPF_PROG_LOAD, struct.pack("<IIQQIIQII16s", prog_type, 2, ctypes.addressof(insns),
                                          ctypes.addressof(license), 0, 0, 0, 0, 0,
                                          name.encode()))


def prog_attach(target_fd, prog_fd, attach_type):
    bpf(BPF_PROG_ATTACH, struct.pack("<4I", target_fd, prog_fd, attach_type, 0))


listener = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(listener.getsockname())
server, _ = listener.accept()
sockhash = map_create(BPF_MAP_TYPE_SOCKHASH, "conns", 4, 8, 4)
update(sockhash, struct.pack("<I", 7), struct.pack("<Q", server.fileno()))
counts = map_create(BPF_MAP_TYPE_HASH, "counts", 4, 8, 16)
update(counts, struct.pack("<I", 1), struct.pack("<Q", 10))
verdicts = map_create(BPF_MAP_TYPE_SOCKMAP, "verdicts", 4, 4, 2)
prog_attach(verdicts, prog_load(BPF_PROG_TYPE_SK_MSG, "pass_all", 1), BPF_SK_MSG_VERDICT)
prog_attach(verdicts, prog_load(BPF_PROG_TYPE_SK_SKB, "skb_drop", 0), BPF_SK_SKB_VERDICT)
cookie = struct.unpack("<Q", server.getsockopt(socket.SOL_SOCKET, 57, 8))[0]  # SO_COOKIE
print(json.dumps({"pid": os.getpid(), "cookie": cookie}), flush=True)
for line in sys.stdin:
    if line.strip() == "exit":
        break
