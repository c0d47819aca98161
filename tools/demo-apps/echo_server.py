"""The demo's server: echoes every message back, and says what it received."""

import socket
import sys
import threading


def serve(conn, peer):
    with conn:
        while data := conn.recv(65536):
            print(f"server: from port {peer[1]} received {data.decode(errors='replace')!r}", flush=True)
            conn.sendall(data)


listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    conn, peer = listener.accept()
    threading.Thread(target=serve, args=(conn, peer), daemon=True).start()
