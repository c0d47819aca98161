"""`sockshim dump` shows what the kernel would: a TCP socket whose non-blocking
connect completed is ESTABLISHED even when the program made no call since
connect() (the shim has not noticed the completion yet), and a bound UDP
socket shows its local address (bind is not hooked). No policy is needed
(SOCKSHIM_CONTROL=on starts the control socket without one)."""

import json
import os
import subprocess
import tempfile

from harness import PYTHON, environment, fail, note, sockshim

PROGRAM = r"""
import errno, json, socket, sys
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
c = socket.socket()
c.setblocking(False)
assert c.connect_ex(srv.getsockname()) == errno.EINPROGRESS
conn, _ = srv.accept()  # the client is ESTABLISHED; it is not asked anything
print(json.dumps({"udp": udp.getsockname()[1], "client": c.getsockname()[1]}), flush=True)
sys.stdin.readline()
"""


def main():
    env = environment("shim", SOCKSHIM_CONTROL="on",
                      SOCKSHIM_RUNTIME_DIR=tempfile.mkdtemp(prefix="sockshim-dump-"))
    proc = subprocess.Popen([PYTHON, "-c", PROGRAM], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line:
            fail(f"the program exited {proc.wait()}: {proc.stderr.read()[-2000:]}")
        ports = json.loads(line)

        def dump(*args):
            return sockshim("dump", str(proc.pid), "sockets", *args, env=env).stdout

        sockets = json.loads(dump("--json"))["processes"][0]["sockets"]
        problems = []
        udp = [s for s in sockets if s["type"] == "SOCK_DGRAM"]
        want_udp = f"127.0.0.1:{ports['udp']}"
        if [s["local"] for s in udp] != [want_udp]:
            problems.append(f"UDP socket bound to {want_udp}: dump shows {udp}")
        else:
            note(f"ok: the bound UDP socket shows LOCAL {want_udp}")
        client = [s for s in sockets if s["local"] == f"127.0.0.1:{ports['client']}"
                  or (s["type"] == "SOCK_STREAM" and s["state"] == "SYN_SENT")]
        if [s["state"] for s in client] != ["ESTABLISHED"]:
            problems.append(f"the connected client socket: dump shows {client}")
        else:
            note("ok: the client whose non-blocking connect completed shows ESTABLISHED")
        if problems:
            fail("\n".join(problems))
        text = dump()
        rows = [r.split() for r in text.splitlines()]
        if not any(want_udp in r and "SOCK_DGRAM" in r for r in rows) or \
                not any(f"127.0.0.1:{ports['client']}" in r and "ESTABLISHED" in r for r in rows):
            fail(f"the table does not show them so:\n{text}")
        note("ok: the table shows the same")
    finally:
        proc.stdin.close()
        if proc.wait(timeout=20) != 0:
            fail(f"the program exited {proc.returncode}: {proc.stderr.read()[-2000:]}")
    print("PASS dump states and addresses", flush=True)


main()
