"""Connects without blocking and learns of the completion in the way MODE names,
and in no other way; then prints the connection's addresses and waits for a
line on stdin, then sends a message the drop_and_loop policy drops and one it
passes and prints what send() said of each.

poll, select, epoll: writability reported by that call.
send: the handshake is over (the listener accepted), then the first send.
recv: the peer speaks first, the first call is a blocking recv.
getpeername: the handshake is over, then getpeername.
blocking-send: the listener's accept queue is full, so the SYN is dropped and
the socket stays in SYN_SENT; it is made blocking and sends while the handshake
is still to come (the kernel's send waits for it)."""

import errno
import json
import select
import socket
import sys

mode = sys.argv[1]
TCP_INFO_STATE_SYN_SENT = 2


def outcome(sock, text):
    try:
        sock.send(text.encode())
        return "sent"
    except OSError as e:
        return errno.errorcode[e.errno]


def tcp_state(sock):
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]


srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(0 if mode == "blocking-send" else 8)
filler = None
if mode == "blocking-send":
    filler = socket.create_connection(srv.getsockname())  # fills the accept queue

c = socket.socket()
c.setblocking(False)
if c.connect_ex(srv.getsockname()) != errno.EINPROGRESS:
    raise SystemExit("connect did not say EINPROGRESS")

first = None
if mode == "poll":
    p = select.poll()
    p.register(c, select.POLLOUT)
    if not p.poll(10000):
        raise SystemExit("poll: not writable")
elif mode == "select":
    if not select.select([], [c], [], 10)[1]:
        raise SystemExit("select: not writable")
elif mode == "epoll":
    ep = select.epoll()
    ep.register(c.fileno(), select.EPOLLOUT)
    if not ep.poll(10):
        raise SystemExit("epoll: not writable")
elif mode in ("send", "recv", "getpeername"):
    conn, _ = srv.accept()  # the handshake is over: the client is ESTABLISHED
    if mode == "send":
        first = outcome(c, "please DROP")
    elif mode == "recv":
        conn.sendall(b"hi")
        c.setblocking(True)
        if c.recv(2) != b"hi":
            raise SystemExit("recv: wrong bytes")
    else:
        c.getpeername()
elif mode == "blocking-send":
    if tcp_state(c) != TCP_INFO_STATE_SYN_SENT:
        raise SystemExit("blocking-send: the socket left SYN_SENT before the send")
    conn, _ = srv.accept()  # room for the retransmitted SYN, a second from now
    c.setblocking(True)
    first = outcome(c, "please DROP")
else:
    raise SystemExit(f"unknown mode {mode}")

local, remote = c.getsockname(), srv.getsockname()  # not getpeername: it notices too
print(json.dumps({"local": list(local), "remote": list(remote), "first": first}), flush=True)
sys.stdin.readline()
c.setblocking(True)
sent = [outcome(c, "please DROP"), outcome(c, "hello")]
print(json.dumps({"sent": sent}), flush=True)
sys.stdin.readline()
