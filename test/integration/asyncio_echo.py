"""An asyncio echo server and client (the default event loop: epoll on Linux).

usage: asyncio_echo.py server PORT | client PORT
The client prints, per connection, the size and sha256 of what came back, and
fails when it is not what it sent.
"""

import asyncio
import hashlib
import sys

CONNECTIONS = 24


def payload(i):
    """Deterministic bytes of a size between 1 byte and about 1.5 MB."""
    size = 1 if i == 0 else (i * 65521) % 1_500_000 + 1
    block = hashlib.sha256(str(i).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


async def handle(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def serve(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port)
    print(type(asyncio.get_running_loop()._selector).__name__, flush=True)
    async with server:
        await server.serve_forever()


async def exchange(port, i):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    data = payload(i)
    for start in range(0, len(data), 32768):
        writer.write(data[start:start + 32768])
        await writer.drain()
    writer.write_eof()
    echoed = await reader.read()
    writer.close()
    await writer.wait_closed()
    if echoed != data:
        raise SystemExit(f"connection {i}: {len(echoed)} bytes back for {len(data)} sent")
    return f"connection {i}: {len(echoed)} bytes, sha256 {hashlib.sha256(echoed).hexdigest()}"


async def client(port):
    print(type(asyncio.get_running_loop()._selector).__name__)
    lines = await asyncio.gather(*(exchange(port, i) for i in range(CONNECTIONS)))
    print("\n".join(lines))


def main():
    role, port = sys.argv[1], int(sys.argv[2])
    asyncio.run(serve(port) if role == "server" else client(port))


main()
