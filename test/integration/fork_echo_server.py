"""A fork-per-connection echo server: `fork_echo_server.py PORT` listens on
127.0.0.1:PORT; each accepted connection is served by a fork child that
echoes until EOF and exits; the parent closes its copy and accepts on."""

import os
import signal
import socket
import sys

signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children reap themselves
with socket.socket() as lsock:
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", int(sys.argv[1])))
    lsock.listen(64)
    while True:
        conn, _ = lsock.accept()
        if os.fork() == 0:
            lsock.close()
            while data := conn.recv(65536):
                conn.sendall(data)
            os._exit(0)
        conn.close()
