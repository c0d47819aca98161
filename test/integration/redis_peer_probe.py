"""A Redis client on one connection (run under the shim): ROUNDS rounds of
SET, GET and INCR, each reply checked, then prints JSON with its local port,
the bytes it sent and the kernel's count of bytes its socket received over
TCP (tcpi_bytes_received), and keeps the connection open until a line on
stdin.

Usage: redis_peer_probe.py PORT ROUNDS"""

import json
import socket
import struct
import sys

TCPI_BYTES_RECEIVED = 128  # offset of tcpi_bytes_received in struct tcp_info


def command(*args):
    out = f"*{len(args)}\r\n".encode()
    for a in args:
        a = str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.buf = b""
        self.sent = 0

    def ask(self, *args):
        data = command(*args)
        self.sock.sendall(data)
        self.sent += len(data)
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise SystemExit(f"EOF from redis after {args}")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        if line.startswith(b"$") and line != b"$-1":
            n = int(line[1:])
            while len(self.buf) < n + 2:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise SystemExit("EOF from redis in a bulk reply")
                self.buf += chunk
            line, self.buf = self.buf[:n], self.buf[n + 2:]
        return line


def main():
    port, rounds = int(sys.argv[1]), int(sys.argv[2])
    c = Conn(port)
    c.ask("DEL", "probe:counter")
    for i in range(rounds):
        value = f"value-{i}-" + "x" * (i % 200)
        for got, want in ((c.ask("SET", f"probe:{i}", value), b"+OK"),
                          (c.ask("GET", f"probe:{i}"), value.encode()),
                          (c.ask("INCR", "probe:counter"), b":%d" % (i + 1))):
            if got != want:
                raise SystemExit(f"round {i}: got {got!r}, want {want!r}")
    info = c.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    print(json.dumps({"port": c.sock.getsockname()[1], "sent": c.sent, "checked": rounds * 3,
                      "tcp_bytes_received": struct.unpack_from("Q", info,
                                                               TCPI_BYTES_RECEIVED)[0]}),
          flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main()
