"""A domain member to inspect: one socket (so it serves a control socket), then
commands on stdin, one answer line each on stdout: "fork" (a child that waits
for "exec", then execs this script again as the same process), "exec", "exit"."""

import json
import os
import socket
import sys

sock = socket.socket()
print(json.dumps({"pid": os.getpid()}), flush=True)
child_pipe = None
for line in sys.stdin:
    cmd = line.strip()
    if cmd == "fork":
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(w)
            os.read(r, 1)  # until told to exec
            os.execv(sys.executable, [sys.executable, __file__, "exec'd"])
        os.close(r)
        child_pipe = w
        print(json.dumps({"child": pid}), flush=True)
    elif cmd == "exec":
        os.write(child_pipe, b"x")
        print(json.dumps({"ok": True}), flush=True)
    elif cmd == "exit":
        break
