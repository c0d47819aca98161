"""The demo's client: sends a few messages on one connection and says what
became of each. Then it waits for a line on stdin, so its state can be dumped
while it still runs."""

import errno
import socket
import sys

conn = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
conn.settimeout(5)
for text in ["hello", "please DROP this one", "LOOP me back", "goodbye"]:
    try:
        conn.send(text.encode())
    except OSError as e:
        print(f"client: sent {text!r}: {errno.errorcode[e.errno]} (dropped by the policy)", flush=True)
        continue
    reply = conn.recv(65536).decode()
    print(f"client: sent {text!r}, read back {reply!r}", flush=True)
print("client: ready", flush=True)
sys.stdin.readline()
