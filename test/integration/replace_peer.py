"""A process of the replacement test: commands on stdin, one JSON answer line
each: "pair" (a local TCP connection, both ends here: their fds), "send FD
TEXT", "recv FD N" (N bytes, 10 s at most), "peek FD" (what is readable now,
without waiting), "exit"."""

import json
import os
import socket
import sys

kept = {}
print(json.dumps({"pid": os.getpid()}), flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "pair":
        with socket.socket() as lsock:
            lsock.bind(("127.0.0.1", 0))
            lsock.listen()
            c = socket.create_connection(lsock.getsockname())
            s, _ = lsock.accept()
        kept[c.fileno()], kept[s.fileno()] = c, s
        answer = {"client": c.fileno(), "server": s.fileno()}
    elif cmd == "send":
        kept[int(args[0])].sendall(args[1].encode())
        answer = {"ok": True}
    elif cmd == "recv":
        s, n, got = kept[int(args[0])], int(args[1]), b""
        s.settimeout(10)
        try:
            while len(got) < n:
                chunk = s.recv(n - len(got))
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
        answer = {"data": got.decode()}
    elif cmd == "peek":
        s = kept[int(args[0])]
        s.setblocking(False)  # a timeout would make recv wait for data first
        try:
            answer = {"data": s.recv(65536).decode()}
        except BlockingIOError:
            answer = {"data": ""}
    elif cmd == "exit":
        break
    print(json.dumps(answer), flush=True)
