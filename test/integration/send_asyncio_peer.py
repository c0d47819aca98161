"""An asyncio echo server and client in one process exchanging 1 MB; prints
the SHA-256 of what came back."""

import asyncio
import hashlib


async def handle(reader, writer):
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = bytes(i % 253 for i in range(1 << 20))
    writer.write(payload)
    await writer.drain()
    got = await reader.readexactly(len(payload))
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    print(hashlib.sha256(got).hexdigest(), hashlib.sha256(payload).hexdigest())


asyncio.run(main())
