"""An inetd-style server under a parser policy (sockops put the accepted
socket in a sockhash whose stream parser and verdict pass every frame)
accepts, moves the socket to fds 0 and 1 and execs its handler. The exec'd
image still has the socket in its map, with a psock running the policy's
programs, as `sockshim dump` of it shows; the domain's entry names it at fd 0;
and what the client sends after the exec comes back through the psock."""

import json
import os
import shutil
import socket
import subprocess
import tempfile

from harness import (PYTHON, SOCKSHIM, cli_environment, control_answer, dump, fail, note,
                     request_line, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER = os.path.join(HERE, "exec_server.py")
POLICY = os.path.join(HERE, "recv_pass.json")


def exec_done(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"handle" in f.read()
    except FileNotFoundError:
        return False


def main():
    runtime = tempfile.mkdtemp(prefix="sockshim-exec-")
    os.chmod(runtime, 0o700)
    env = cli_environment(runtime)
    proc = subprocess.Popen([SOCKSHIM, "run", "-p", POLICY, "--", PYTHON, SERVER, "serve"],
                            env=env, stdout=subprocess.PIPE, text=True)
    try:
        hello = json.loads(proc.stdout.readline())
        pid = hello["pid"]
        with socket.create_connection(("127.0.0.1", hello["port"]), timeout=20) as c:
            local_port = c.getsockname()[1]
            wait_for("the server's exec of its handler", lambda: exec_done(pid), limit=20)
            control = os.path.join(runtime, f"{pid}.sock")
            wait_for("the exec'd handler's control socket",
                     lambda: control_answer(control, request_line("info")) is not None, limit=20)

            def in_map():
                d = dump(pid, "maps", "stats", env=env)
                m = [m for m in d["maps"] if m["name"] == "accepted"]
                return m and m[0]["entries"] and d, m

            wait_for("the socket back in the exec'd image's map",
                     lambda: in_map()[0], limit=20)
            d, m = in_map()
            entries = m[0]["entries"]
            if len(entries) != 1 or entries[0]["key"]["remote_port"] != local_port \
                    or 0 not in entries[0]["fds"]:
                fail(f"the exec'd image's map holds {entries}, not the client's socket at fd 0")
            programs = [p["programs"] for p in d["psocks"]]
            if len(programs) != 1 or "stream_parser" not in programs[0] \
                    or "stream_verdict" not in programs[0]:
                fail(f"the exec'd image's psocks run {programs}, not the map's parser and verdict")
            shared = d["domain_maps"]["maps"]
            held = [h for m in shared if m["name"] == "accepted" for e in m["entries"]
                    for h in e["holders"]]
            if held != [{"pid": pid, "fd": 0}]:
                fail(f"the domain's entry is held by {held}, not by {pid} at fd 0")
            note(f"ok: after exec, pid {pid} has the socket in its map at fd 0 with a psock "
                 f"running {programs[0]}")

            message = b"after the exec " * 1000
            c.sendall(message)
            got = b""
            while len(got) < len(message):
                chunk = c.recv(65536)
                if not chunk:
                    break
                got += chunk
            if got != message:
                fail(f"the exec'd handler echoed {len(got)} of {len(message)} bytes")
            note(f"ok: {len(message)} bytes echoed by the exec'd image")
            passed = sum(p["stats"]["rx"]["passed"] for p in dump(pid, "stats", env=env)["psocks"])
            if passed != len(message):
                fail(f"the psock's verdict passed {passed} bytes, not the {len(message)} sent")
            note(f"ok: its psock's verdict passed all {passed} bytes")
            c.shutdown(socket.SHUT_WR)
            if c.recv(1) != b"":
                fail("the handler sent more than the echo")
        if proc.wait(timeout=20) != 0:
            fail(f"the handler exited {proc.returncode}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    shutil.rmtree(runtime, ignore_errors=True)
    note("PASS")


if __name__ == "__main__":
    main()
