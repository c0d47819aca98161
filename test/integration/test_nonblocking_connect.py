"""A non-blocking connect enters the policy's maps when it completes: the
sockops program runs when the program learns of the completion (SO_ERROR after
writability, as asyncio and libuv do; or a second connect(), which Linux
answers with 0 once the handshake is done, as hiredis does), so the very first
message already meets the sk_msg program."""

import os
import socket
import subprocess
import threading

from harness import PYTHON, SOCKSHIM, fail, host_options, note

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(os.path.dirname(os.path.dirname(HERE)), "policy", "examples", "drop_and_loop.json")


def main():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received = []

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(1000):
                    received.append(data)
    threading.Thread(target=serve, daemon=True).start()
    env = host_options({k: v for k, v in os.environ.items()
                        if not k.startswith("SOCKSHIM_") and k != "LD_PRELOAD"})
    for mode, expected in (("asyncio", "EACCES sent"), ("connect-again", "0 EACCES sent")):
        r = subprocess.run([SOCKSHIM, "run", "-p", POLICY, "--", PYTHON,
                            os.path.join(HERE, "nonblocking_client.py"), mode, str(port)],
                           env=env, capture_output=True, text=True, timeout=30)
        if r.returncode != 0 or r.stdout.strip() != expected:
            fail(f"{mode}: exit {r.returncode}, printed {r.stdout.strip()!r}, expected {expected!r}"
                 f"\n{r.stderr}")
        note(f"ok: {mode}: the first message met the policy ({expected})")
    if any(b"DROP" in d for d in received):
        fail(f"a dropped message reached the server: {received!r}")
    server.close()
    print("PASS nonblocking connect", flush=True)


if __name__ == "__main__":
    main()
