"""Echo servers for the receive-path tests, one per event-loop style.

usage: recv_servers.py asyncio|epollet PORT
asyncio: asyncio streams (its default loop: level-triggered epoll).
epollet: select.epoll with EPOLLET directly: every wake-up is read until EAGAIN
and written until done, as an edge-triggered loop must.
Prints "listening" once it accepts connections.
"""

import asyncio
import errno
import select
import socket
import sys


async def handle(reader, writer):
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
                read_all(c)
            flush(c)
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
        conns[sock.fileno()] = Conn(sock)
        ep.register(sock.fileno(), select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP
                    | select.EPOLLET)


def read_all(c):
    """Edge-triggered: drain until EAGAIN, or the next edge may never come."""
    while not c.eof:
        try:
            data = c.sock.recv(65536)
        except BlockingIOError:
            return
        except ConnectionResetError:
            data = b""
        if not data:
            c.eof = True
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
