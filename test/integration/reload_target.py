"""Sends each line of stdin on one end of a connection that the policy's sockops
put in a sockhash, and prints what the other end received, or the errno."""
import socket, os, sys, json
s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen()
c=socket.create_connection(s.getsockname()); x,_=s.accept()
print(json.dumps({"pid": os.getpid()}), flush=True)
for line in sys.stdin:
    msg=line.strip().encode()
    try:
        n=c.send(msg); x.settimeout(2); got=x.recv(100); print(json.dumps({"sent": n, "got": got.decode()}), flush=True)
    except OSError as e:
        print(json.dumps({"error": e.errno}), flush=True)
