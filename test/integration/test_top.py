"""`sockshim top` driven in a real terminal (tmux): its screen shows the psocks
of a live process with their traffic in bytes (rates and totals that move with
it, matching what the process sent), refreshes, and q quits it."""

import json
import os
import shutil
import subprocess
import tempfile
import time

from harness import PYTHON, SOCKSHIM, fail, note

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(os.path.dirname(os.path.dirname(HERE)), "policy", "examples", "drop_and_loop.json")

# Per round 1000 bytes passed and 4 dropped, 100 rounds a second at most.
TRAFFIC = r"""
import socket, sys, time
srv = socket.create_server(("127.0.0.1", 0))
c = socket.create_connection(srv.getsockname())
s, _ = srv.accept()
print(__import__("os").getpid(), flush=True)
end = time.monotonic() + 60
while time.monotonic() < end and not sys.stdin.closed:
    c.send(b"x" * 1000)
    got = 0
    while got < 1000:
        got += len(s.recv(65536))
    try:
        c.send(b"DROP")
    except OSError:
        pass
    time.sleep(0.01)
"""

HEADER = ["PID", "COOKIE", "FD", "LOCAL", "REMOTE", "IN/s", "PASS/s", "DROP/s", "REDIR/s", "QUEUED",
          "INGRESS_Q", "IN", "PASSED", "DROPPED", "REDIRECTED"]


def rate(text):
    """A rate cell (812B, 12.4K, 3.0M) in bytes per second."""
    scale = {"B": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
    return float(text[:-1]) * scale[text[-1]]


def cells(row):
    return dict(zip(HEADER, row.split()))


# A tmux server of this run's own: concurrent runs of the suite must not
# share (and kill) one.
TMUX_SOCKET = f"sockshim-test-{os.getpid()}"


def tmux(*args, check=True):
    return subprocess.run(["tmux", "-L", TMUX_SOCKET, *args], capture_output=True, text=True,
                          timeout=20, check=check)


def screen():
    return tmux("capture-pane", "-p", "-t", "top").stdout


def main():
    if not shutil.which("tmux"):
        fail("tmux is not installed")
    runtime = tempfile.mkdtemp(prefix="sockshim-top-")
    env = dict(os.environ, SOCKSHIM_RUNTIME_DIR=runtime)
    env.pop("LD_PRELOAD", None)
    target = subprocess.Popen([SOCKSHIM, "run", "-p", POLICY, "--", PYTHON, "-c", TRAFFIC], env=env,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        pid = target.stdout.readline().strip()
        tmux("kill-server", check=False)
        tmux("new-session", "-d", "-s", "top", "-x", "200", "-y", "30",
             f"env SOCKSHIM_RUNTIME_DIR={runtime} {SOCKSHIM} top {pid}")
        deadline = time.monotonic() + 15
        text = ""
        while time.monotonic() < deadline:
            text = screen()
            rows = [l for l in text.splitlines() if l.split() and l.split()[0] == pid]
            # Second screen on: the rates are bytes over the last second.
            if rows and len(rows[0].split()) == len(HEADER) and rate(cells(rows[0])["IN/s"]) > 0:
                break
            time.sleep(0.3)
        else:
            fail(f"top never showed the psock's traffic:\n{text}")
        header = next(l for l in text.splitlines() if l.startswith("PID"))
        if header.split() != HEADER:
            fail(f"header: {header!r}")
        row = cells(rows[0])
        total_in, passed, dropped = int(row["IN"]), int(row["PASSED"]), int(row["DROPPED"])
        # Bytes, not messages: 1000 passed for every 4 dropped, and every byte
        # in went one way or the other (the PASS sends go out whole).
        rounds = passed // 1000
        if passed < 1000 or passed % 1000 or dropped not in (4 * rounds, 4 * rounds - 4) \
                or total_in != passed + dropped + int(row["QUEUED"]) or int(row["REDIRECTED"]) \
                or row["INGRESS_Q"] != "0":
            fail(f"totals are not the traffic's bytes: {row}")
        # At most 100 rounds a second (and a refresh a little late): at least one round.
        if not 1000 <= rate(row["PASS/s"]) <= 150 * 1000 or not 4 <= rate(row["DROP/s"]) <= 600:
            fail(f"rates are not the traffic's: {row}")
        if "sockshim top: 1 processes, 1 psocks, every 1000 ms  (q quits)" not in text:
            fail(f"title line:\n{text}")
        note("ok: top shows the psock with its rates and totals:\n" + "\n".join(
            l for l in text.splitlines() if l.strip()))
        # A refresh a second (and one a little late): IN moves within 5 s.
        deadline = time.monotonic() + 5
        while True:
            later = [l for l in screen().splitlines() if l.split() and l.split()[0] == pid]
            if later and len(later[0].split()) == len(HEADER) and \
                    int(cells(later[0])["IN"]) > total_in:
                break
            if time.monotonic() > deadline:
                fail(f"top did not refresh: IN stayed {total_in}:\n{screen()}")
            time.sleep(0.1)
        note(f"ok: IN moved from {total_in} to {cells(later[0])['IN']} bytes")
        tmux("send-keys", "-t", "top", "q")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and tmux("has-session", "-t", "top", check=False).returncode == 0:
            time.sleep(0.1)
        if tmux("has-session", "-t", "top", check=False).returncode == 0:
            fail("top did not quit on q")
        note("ok: top refreshes and quits on q")
        once = subprocess.run([SOCKSHIM, "top", pid, "--once"], env=env, capture_output=True,
                              text=True, timeout=20)
        if once.returncode != 0 or "\033[2J" in once.stdout or pid not in once.stdout:
            fail(f"top --once: {once.returncode} {once.stdout!r}")
    finally:
        tmux("kill-server", check=False)
        target.stdin.close()
        target.kill()
        target.wait(timeout=20)
    print("PASS top", flush=True)


if __name__ == "__main__":
    main()
