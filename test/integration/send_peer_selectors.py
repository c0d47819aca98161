"""Two TCP connections in one process exchanging messages through selectors
(epoll). Prints JSON: what each socket read, the selector class, and how many
bytes each socket received over TCP (TCP_INFO tcpi_bytes_received)."""

import json
import selectors
import socket
import struct

TCPI_BYTES_RECEIVED = 128  # offset of tcpi_bytes_received in struct tcp_info


def tcp_bytes_received(sock):
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return struct.unpack_from("Q", info, TCPI_BYTES_RECEIVED)[0]


def main():
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    pairs = []
    for _ in range(2):
        c = socket.create_connection(lst.getsockname())
        s, _ = lst.accept()
        pairs.append((c, s))
    sel = selectors.DefaultSelector()
    names = {}
    for i, (c, s) in enumerate(pairs):
        for sock, name in ((c, f"client{i}"), (s, f"server{i}")):
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ, name)
            names[name] = sock
    # Each end sends to its peer; a large message needs the reader to keep up.
    big = bytes(i % 251 for i in range(300000))
    outgoing = {"client0": b"hello from client0", "server0": b"pong from server0",
                "client1": big, "server1": b"ack"}
    expect = {"server0": len(outgoing["client0"]), "client0": len(outgoing["server0"]),
              "server1": len(big), "client1": 3}
    received = {name: bytearray() for name in names}
    pending = dict(outgoing)
    rounds = 0
    while any(len(received[n]) < expect[n] for n in expect):
        rounds += 1
        if rounds > 100000:
            break
        for name, data in list(pending.items()):
            try:
                sent = names[name].send(data[:65536])
            except BlockingIOError:
                continue
            pending[name] = data[sent:]
            if not pending[name]:
                del pending[name]
        for key, _ in sel.select(timeout=2):
            try:
                chunk = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            received[key.data] += chunk
    print(json.dumps({
        "selector": type(sel).__name__,
        "received": {n: bytes(received[n]).hex() if len(received[n]) < 100
                     else f"{len(received[n])} bytes, ok={bytes(received[n]) == big}"
                     for n in sorted(received)},
        "tcp_bytes_received": {n: tcp_bytes_received(names[n]) for n in sorted(names)},
    }))


if __name__ == "__main__":
    main()
