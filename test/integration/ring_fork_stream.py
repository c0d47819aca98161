"""Two processes stream through peer redirects, both ways at once, then each
shuts its sending side: "fork", one TCP connection made in one process,
which forks, the parent using the client end and the child the server end;
or "split", two unrelated processes, one accepting (the parent's role, on
the accepted socket) and one connecting (the child's). Prints one JSON line per process: bytes and sha256 sent and read, and
the kernel's count of bytes its socket received over TCP
(tcpi_bytes_received).

Usage: ring_fork_stream.py MEGABYTES PARENT_MODE CHILD_MODE fork|split, a mode being
"blocking" (a sending thread, blocking reads) or "asyncio" (loop.sock_recv
and loop.sock_sendall on a non-blocking socket)."""

import asyncio
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading

TCPI_BYTES_RECEIVED = 128  # offset of tcpi_bytes_received in struct tcp_info
CHUNK = 65536


def tcp_bytes_received(sock):
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return struct.unpack_from("Q", info, TCPI_BYTES_RECEIVED)[0]


def stream(seed, total):
    """total bytes in CHUNK pieces, different for each seed and piece."""
    block = hashlib.shake_256(seed.encode()).digest(CHUNK * 4)
    sent = 0
    i = 0
    while sent < total:
        off = (i * 4099) % (len(block) - CHUNK)
        piece = block[off:off + min(CHUNK, total - sent)]
        sent += len(piece)
        i += 1
        yield piece


def blocking(sock, seed, total):
    out = {"sent_sha": None}

    def sender():
        h = hashlib.sha256()
        for piece in stream(seed, total):
            sock.sendall(piece)
            h.update(piece)
        sock.shutdown(socket.SHUT_WR)
        out["sent_sha"] = h.hexdigest()

    t = threading.Thread(target=sender)
    t.start()
    h = hashlib.sha256()
    got = 0
    while True:
        data = sock.recv(CHUNK)
        if not data:
            break
        got += len(data)
        h.update(data)
    t.join()
    return out["sent_sha"], got, h.hexdigest()


def with_asyncio(sock, seed, total):
    sock.setblocking(False)

    async def sender(loop):
        h = hashlib.sha256()
        for piece in stream(seed, total):
            await loop.sock_sendall(sock, piece)
            h.update(piece)
        sock.shutdown(socket.SHUT_WR)
        return h.hexdigest()

    async def reader(loop):
        h = hashlib.sha256()
        got = 0
        while True:
            data = await loop.sock_recv(sock, CHUNK)
            if not data:
                return got, h.hexdigest()
            got += len(data)
            h.update(data)

    async def both():
        loop = asyncio.get_running_loop()
        sent, (got, sha) = await asyncio.gather(sender(loop), reader(loop))
        return sent, got, sha

    return asyncio.run(both())


def run(role, sock, mode, seed, total):
    sent_sha, got, got_sha = (blocking if mode == "blocking" else with_asyncio)(sock, seed, total)
    return {"role": role, "mode": mode, "pid": os.getpid(), "sent": total, "sent_sha": sent_sha,
            "read": got, "read_sha": got_sha, "tcp_bytes_received": tcp_bytes_received(sock)}


def main():
    total = int(float(sys.argv[1]) * 1e6)
    parent_mode, child_mode, how = sys.argv[2], sys.argv[3], sys.argv[4]
    if how.startswith("connect:"):
        # The other process of "split": it only connects, sharing no socket.
        server = socket.create_connection(("127.0.0.1", int(how[8:])))
        print(json.dumps(run("child", server, child_mode, "server", total)), flush=True)
        return
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    if how == "split":
        # Two unrelated processes: this one accepts, a new one connects.
        peer = subprocess.Popen([sys.executable, __file__, sys.argv[1], parent_mode, child_mode,
                                 f"connect:{lst.getsockname()[1]}"])
        client, _ = lst.accept()
        lst.close()
        result = run("parent", client, parent_mode, "client", total)
        result["child_status"] = peer.wait()
        print(json.dumps(result), flush=True)
        return
    client = socket.create_connection(lst.getsockname())
    server, _ = lst.accept()
    lst.close()
    # Both ends stay open in both processes: each redirects to the other's
    # socket through its own maps, and reads only its own end.
    pid = os.fork()
    if pid == 0:
        print(json.dumps(run("child", server, child_mode, "server", total)), flush=True)
        os._exit(0)
    result = run("parent", client, parent_mode, "client", total)
    _, status = os.waitpid(pid, 0)
    result["child_status"] = status
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
