"""Traffic for the control stress test and benchmark: ping-pong of 1000-byte
messages over loopback on a connection whose client end is a psock (the
drop_and_loop policy passes them), until stdin closes; then prints the bytes
sent and received and the round-trip latencies (µs) as JSON."""

import json
import os
import socket
import sys
import threading
import time

srv = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(srv.getsockname())
server, _ = srv.accept()
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
print(os.getpid(), flush=True)

payload = b"p" * 1000
sent = received = 0
latencies = []
while not stop.is_set():
    t0 = time.perf_counter()
    client.sendall(payload)
    sent += len(payload)
    got = 0
    while got < len(payload):
        got += len(server.recv(len(payload) - got))
    server.sendall(b"k")
    client.recv(1)
    received += got
    latencies.append((time.perf_counter() - t0) * 1e6)
print(json.dumps({"sent": sent, "received": received, "latencies": latencies}), flush=True)
