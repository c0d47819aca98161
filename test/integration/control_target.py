"""A program to inspect: a listener, a connected pair and a dup'd fd, then
commands on stdin ("closeall", "fork", "exit"), one answer line each on stdout."""

import json
import os
import socket
import sys

SO_COOKIE = 57


def cookie(s):
    return int.from_bytes(s.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8), "little")


listener = socket.socket()
listener.bind(("127.0.0.1", 0))
listener.listen()
client = socket.create_connection(listener.getsockname())
server, _ = listener.accept()
dup = os.dup(server.fileno())
print(json.dumps({
    "pid": os.getpid(),
    "port": listener.getsockname()[1],
    "listener": [listener.fileno(), cookie(listener)],
    "client": [client.fileno(), cookie(client)],
    "server": [sorted([server.fileno(), dup]), cookie(server)],
}), flush=True)

child = None
for line in sys.stdin:
    command = line.strip()
    if command == "closeall":
        # What a daemon does: close every fd it does not know, the shim's too.
        keep = {0, 1, 2, listener.fileno(), client.fileno(), server.fileno(), dup}
        for fd in range(3, 65536):
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        print("closed", flush=True)
    elif command == "fork":
        r, w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(w)
            own = socket.socket()  # the child's first socket: it serves its own control socket
            os.read(r, 1)          # until the parent says stop
            os._exit(0)
        os.close(r)
        print(json.dumps({"child": child}), flush=True)
    elif command == "exit":
        break
if child:
    os.write(w, b"x")
    os.waitpid(child, 0)
