"""Runs under the shim with socketpair_redirect.json: a TCP pair whose
receiving end (src[0]) is read by the receive engine, and two socketpair()s
whose first ends are pair[0] (SOCK_STREAM) and pair[1] (SOCK_DGRAM). Each
message sent on the TCP pair is redirected, by its first byte, into a pair
end's receive queue (ingress) or out of it to the other end (egress). Each
arrival is read as a user would: a reader already blocked in recv, then poll,
select and recv. Prints one line per case and "ok"; exits 1 on the first
failure."""

import ctypes
import select
import socket
import struct
import sys
import threading

TIMEOUT = 5.0
lib = ctypes.CDLL(None)


def insert(map_name, key, sock):
    r = lib.sockshim_map_update_elem(map_name.encode(), ctypes.byref(ctypes.c_uint32(key)),
                                     ctypes.byref(ctypes.c_uint64(sock.fileno())),
                                     ctypes.c_uint64(0))
    if r != 0:
        sys.exit(f"FAIL: map update {map_name}[{key}]: {r}")


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def readable(sock):
    """poll, then select, must both report sock readable within TIMEOUT."""
    p = select.poll()
    p.register(sock, select.POLLIN)
    if not p.poll(TIMEOUT * 1000):
        return "poll saw nothing"
    if not select.select([sock], [], [], TIMEOUT)[0]:
        return "select saw nothing"
    return None


def nothing_more(sock):
    p = select.poll()
    p.register(sock, select.POLLIN)
    return not p.poll(100)


listener = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(listener.getsockname())
src, _ = listener.accept()
stream = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
dgram = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
insert("src", 0, src)
insert("pair", 0, stream[0])
insert("pair", 1, dgram[0])

# A reader blocked in recv before the bytes arrive is woken by them.
stream[0].setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", int(TIMEOUT), 0))
got = []
blocked = threading.Thread(target=lambda: got.append(stream[0].recv(100)))
blocked.start()
client.sendall(b"I stream ingress, blocked reader")
blocked.join()
if got != [b"I stream ingress, blocked reader"]:
    fail(f"stream ingress, blocked reader: {got!r}")
print("stream ingress, blocked reader: ok", flush=True)

for msg, reader, other in ((b"I stream ingress", stream[0], stream[1]),
                           (b"E stream egress", stream[1], stream[0]),
                           (b"i dgram ingress", dgram[0], dgram[1]),
                           (b"e dgram egress", dgram[1], dgram[0])):
    name = msg[2:].decode()
    client.sendall(msg)
    if why := readable(reader):
        fail(f"{name}: {why}")
    data = reader.recv(100)
    if data != msg:
        fail(f"{name}: read {data!r}, sent {msg!r}")
    if not nothing_more(reader) or not nothing_more(other):
        fail(f"{name}: more than the message arrived")
    print(f"{name}: ok", flush=True)

# Two datagrams redirected into the SOCK_DGRAM end are two reads.
client.sendall(b"i first")
if why := readable(dgram[0]):
    fail(f"dgram ingress, first of two: {why}")
client.sendall(b"i second")
reads = [dgram[0].recv(100)]
dgram[0].settimeout(TIMEOUT)
reads.append(dgram[0].recv(100))
if reads != [b"i first", b"i second"]:
    fail(f"dgram ingress, two datagrams: read {reads!r}")
print("dgram ingress, two datagrams: ok", flush=True)
print("ok", flush=True)
