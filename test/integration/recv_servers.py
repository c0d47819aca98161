"""Echo servers for the receive-path tests, one per event-loop style.

usage: recv_servers.py asyncio|epollet PORT
asyncio: asyncio streams (its default loop: level-triggered epoll).
epollet: select.epoll with EPOLLET directly. It reads until EAGAIN or until
256 KiB wait to be echoed; then it writes, and once that backlog is gone reads
again without waiting for a new edge (none comes for bytes already queued), as
an edge-triggered loop must.
Prints "listening" once it accepts connections. Accepted sockets get a small
SO_RCVBUF, as some servers set, so that a client that stops reading soon fills
the server's receive side (under the shim: the psock's queue, sized by it).
"""

import asyncio
import errno
import select
import socket
import sys

RCVBUF = 128 * 1024
BACKLOG = 256 * 1024  # epollet: bytes read but not yet echoed before it stops reading


async def handle(reader, writer):
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def serve_asyncio(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print("listening", flush=True)
    async with server:
        await server.serve_forever()


class Conn:
    def __init__(self, sock):
        self.sock, self.out, self.eof = sock, bytearray(), False
        self.readable = True  # until a read says EAGAIN


def serve_epollet(port):
    lst = socket.create_server(("127.0.0.1", port))
    lst.setblocking(False)
    ep = select.epoll()
    ep.register(lst.fileno(), select.EPOLLIN | select.EPOLLET)
    conns = {}
    print("listening", flush=True)
    while True:
        for fd, events in ep.poll():
            if fd == lst.fileno():
                accept_all(lst, ep, conns)
                continue
            c = conns[fd]
            if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                c.readable = True
            # Read and echo until reading would block (the edge is used up) or
            # writing would (EPOLLOUT's edge brings us back).
            while True:
                if c.readable and len(c.out) < BACKLOG:
                    read_some(c)
                before = len(c.out)
                flush(c)
                if not c.readable or len(c.out) >= BACKLOG or len(c.out) == before:
                    break
            if c.eof and not c.out:
                ep.unregister(fd)
                c.sock.close()
                del conns[fd]


def accept_all(lst, ep, conns):
    while True:
        try:
            sock, _ = lst.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        conns[sock.fileno()] = Conn(sock)
        ep.register(sock.fileno(), select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP
                    | select.EPOLLET)


def read_some(c):
    """Reads until EAGAIN (only then may it wait for the next edge), EOF, or a
    full backlog."""
    while not c.eof and len(c.out) < BACKLOG:
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            c.readable = False
            return
        except ConnectionResetError:
            data = b""
        if not data:
            c.eof = True
            c.readable = False
        c.out += data


def flush(c):
    while c.out:
        try:
            n = c.sock.send(c.out)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno in (errno.EPIPE, errno.ECONNRESET):
                c.out.clear()
                c.eof = True
                return
            raise
        del c.out[:n]


def main():
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "asyncio":
        asyncio.run(serve_asyncio(port))
    else:
        serve_epollet(port)


main()
