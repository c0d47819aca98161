"""1000 control requests in a row, then 50 at once, while traffic flows through
a psock: every request is answered, and every byte of the traffic arrives."""

import json
import os
import socket
import subprocess
import tempfile
import threading

from harness import PYTHON, SOCKSHIM, fail, host_options, note

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(os.path.dirname(os.path.dirname(HERE)), "policy", "examples", "drop_and_loop.json")


def request(path, command):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(json.dumps({"version": 1, "command": command}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    return json.loads(data)


def main():
    runtime = tempfile.mkdtemp(prefix="sockshim-stress-")
    env = host_options(dict(os.environ, SOCKSHIM_RUNTIME_DIR=runtime))
    env.pop("LD_PRELOAD", None)
    target = subprocess.Popen([SOCKSHIM, "run", "-p", POLICY, "--", PYTHON,
                               os.path.join(HERE, "control_stress.py")],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid = int(target.stdout.readline())
        path = os.path.join(runtime, f"{pid}.sock")
        for i in range(1000):
            r = request(path, "dump" if i % 2 else "info")
            if not r.get("ok"):
                fail(f"request {i}: {r!r}")
        note("ok: 1000 requests in a row answered")
        errors = []

        def one():
            try:
                if not request(path, "dump").get("ok"):
                    errors.append("not ok")
            except OSError as e:
                errors.append(str(e))
        threads = [threading.Thread(target=one) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        if errors:
            fail(f"{len(errors)} of 50 concurrent requests failed: {errors[:3]}")
        note("ok: 50 requests at once answered")
        psock = request(path, "dump")["result"]["psocks"]
        tx = psock[0]["stats"]["tx"] if len(psock) == 1 else {}
        if not tx or tx["dropped"] != 0 or tx["in"] == 0 or \
                tx["in"] != tx["passed"] + tx["queued"]:
            fail(f"psocks during traffic: {psock!r}")
        target.stdin.close()
        result = json.loads(target.stdout.readline())
        if target.wait(timeout=30) != 0 or result["sent"] != result["received"] or result["sent"] == 0:
            fail(f"traffic: {result['sent']} sent, {result['received']} received")
        note(f"ok: all {result['sent']} bytes of the traffic arrived")
    finally:
        if target.poll() is None:
            target.kill()
    print("PASS control stress", flush=True)


if __name__ == "__main__":
    main()
