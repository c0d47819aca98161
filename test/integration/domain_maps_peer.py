"""One end of local TCP connections, for the domain maps test: commands on
stdin, one JSON answer line each: "listen", "connect PORT", "accept",
"fork" (a child holding everything, until killed), "close_accepted", "exit"."""

import json
import os
import socket
import sys

listener, kept, accepted = None, [], []
print(json.dumps({"pid": os.getpid()}), flush=True)
for line in sys.stdin:
    cmd, *args = line.split()
    if cmd == "listen":
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        answer = {"port": listener.getsockname()[1]}
    elif cmd == "connect":
        s = socket.create_connection(("127.0.0.1", int(args[0])))
        kept.append(s)
        answer = {"port": s.getsockname()[1], "fd": s.fileno()}
    elif cmd == "accept":
        s, peer = listener.accept()
        accepted.append(s)
        answer = {"port": s.getsockname()[1], "peer": peer[1], "fd": s.fileno()}
    elif cmd == "fork":
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.read(r, 1)  # never written: until killed
            os._exit(0)
        answer = {"child": pid}
    elif cmd == "close_accepted":
        for s in accepted:
            s.close()
        accepted.clear()
        answer = {"ok": True}
    elif cmd == "exit":
        break
    print(json.dumps(answer), flush=True)
