"""A domain member for the sk_storage test. "serve PATH": a TCP pair, then
wait on the unix socket PATH for a peer and pass it the client end's fd over
SCM_RIGHTS. "take PATH": receive that fd. Prints {"pid", "fd"}; then each
stdin line "close" closes that fd; "exit" ends."""

import json
import os
import socket
import sys
import time

mode, path = sys.argv[1], sys.argv[2]
if mode == "serve":
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen()
    c = socket.create_connection(lst.getsockname())
    x, _ = lst.accept()
    u = socket.socket(socket.AF_UNIX)
    u.bind(path)
    u.listen()
    fd = c.fileno()
    print(json.dumps({"pid": os.getpid(), "fd": fd}), flush=True)
    peer, _ = u.accept()
    socket.send_fds(peer, [b"x"], [fd])
else:
    u = socket.socket(socket.AF_UNIX)
    deadline = time.monotonic() + 10
    while True:
        try:
            u.connect(path)
            break
        except (FileNotFoundError, ConnectionRefusedError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    _, fds, _, _ = socket.recv_fds(u, 1, 1)
    fd = fds[0]
    print(json.dumps({"pid": os.getpid(), "fd": fd}), flush=True)
for line in sys.stdin:
    if line.strip() == "close":
        os.close(fd)
        print(json.dumps({"closed": fd}), flush=True)
    elif line.strip() == "exit":
        break
