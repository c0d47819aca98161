"""Run under `sockshim run -p POLICY`: accepts one connection (its sockops put
it in a map with a parser and a pass verdict), says so on stdout as JSON
{"pid", "port"}, then blocks reading it in the way argv[1] names (select, poll,
recv or epoll) and prints, as JSON, what the first read returned."""

import json
import os
import select
import socket
import sys

how = sys.argv[1]
srv = socket.create_server(("127.0.0.1", 0))
print(json.dumps({"pid": os.getpid(), "port": srv.getsockname()[1]}), flush=True)
conn, _ = srv.accept()
print(json.dumps({"accepted": True}), flush=True)
if how == "select":
    select.select([conn], [], [])
elif how == "poll":
    p = select.poll()
    p.register(conn, select.POLLIN)
    p.poll()
elif how == "epoll":
    ep = select.epoll()
    ep.register(conn.fileno(), select.EPOLLIN)
    ep.poll()
# recv: the read itself blocks.
data = conn.recv(1 << 16)
print(json.dumps({"got": data.decode(errors="replace")}), flush=True)
