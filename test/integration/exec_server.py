"""An inetd-style server: `exec_server.py serve` listens on 127.0.0.1, prints
{"port", "pid"} and waits for one connection; once accepted it puts the socket
on fds 0 and 1 and execs `exec_server.py handle`, which echoes what it reads
until EOF and then exits. The test asks the exec'd image's dump."""

import json
import os
import socket
import sys


def serve():
    with socket.socket() as lsock:
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(1)
        print(json.dumps({"port": lsock.getsockname()[1], "pid": os.getpid()}), flush=True)
        conn, _ = lsock.accept()
    fd = conn.detach()
    os.dup2(fd, 0)
    os.dup2(fd, 1)
    os.close(fd)
    os.execv(sys.executable, [sys.executable, os.path.abspath(__file__), "handle"])


def handle():
    while True:
        data = os.read(0, 65536)
        if not data:
            return
        while data:
            data = data[os.write(1, data):]


if __name__ == "__main__":
    {"serve": serve, "handle": handle}[sys.argv[1]]()
