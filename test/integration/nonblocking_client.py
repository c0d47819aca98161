"""Connects without blocking, in the way MODE names, then sends a message the
drop_and_loop policy drops and one it passes; prints what send() said of each."""

import asyncio
import errno
import select
import socket
import sys

mode, port = sys.argv[1], int(sys.argv[2])


def outcome(sock, text):
    try:
        sock.send(text.encode())
        return "sent"
    except OSError as e:
        return errno.errorcode[e.errno]


if mode == "asyncio":  # EPOLLOUT, then getsockopt(SO_ERROR), as asyncio does
    async def main():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sock = writer.get_extra_info("socket")._sock
        sock.setblocking(True)
        print(outcome(sock, "please DROP"), outcome(sock, "hello"), flush=True)
        writer.close()
    asyncio.run(main())
else:  # select for writability, then a second connect() (0 once connected)
    sock = socket.socket()
    sock.setblocking(False)
    assert sock.connect_ex(("127.0.0.1", port)) == errno.EINPROGRESS
    select.select([], [sock], [], 5)
    second = sock.connect_ex(("127.0.0.1", port))
    sock.setblocking(True)
    print(errno.errorcode.get(second, second), outcome(sock, "please DROP"), outcome(sock, "hello"),
          flush=True)
