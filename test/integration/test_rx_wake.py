"""Readers left asleep (issue 11, item 3): a thread blocked reading a socket
that the receive engine reads must wake and go on reading the socket itself
when the engine stops, whatever it waits in.

`test_rx_wake.py WAIT...` (WAIT: select, poll, recv, epoll): for each, and for
each way of stopping the engine (`sockshim map delete`, and `sockshim reload`
to a policy that keeps the map without a parser or verdict), a target under
rx_wake_pass.json accepts a connection and blocks in WAIT; once `dump` shows
its psock and /proc shows the thread asleep in the wait's system call, the
engine is stopped, then the client sends: the target must get the bytes.

`test_rx_wake.py socat`: socat under policy/examples/forwarder.json forwards
100 MiB from a client to an upstream server; a `sockshim map delete` of the
accepted socket (key 0) mid-transfer hands it back to socat's own copy loop,
which is asleep in select: every byte must arrive once, in order (sha256), and
socat must exit when the client is done.
"""

import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
# The system calls a reader sleeps in (x86_64 and aarch64 numbers): select,
# poll, epoll_wait and their variants; the shim waits for select and recv in
# ppoll.
SLEEP_CALLS = {23, 270, 72, 7, 271, 73, 232, 281, 441, 22}
LIMIT = 15  # seconds for any one condition


def psock_count(env, pid):
    return len(harness.dump(pid, env=env).get("psocks", []))


def wake(wait, stop, runtime):
    env = harness.cli_environment(runtime)
    target = harness.Target(os.path.join(HERE, "rx_wake_target.py"), wait,
                            policy=os.path.join(HERE, "rx_wake_pass.json"), env=env, stdin=False)
    with target:
        facts = target.read()
        pid = facts["pid"]
        client = socket.create_connection(("127.0.0.1", facts["port"]), timeout=LIMIT)
        if not target.read().get("accepted"):
            harness.fail(f"{wait}: the target did not accept")
        harness.wait_for(f"{wait}: dump shows the accepted socket's psock",
                         lambda: psock_count(env, pid), limit=LIMIT)
        harness.wait_for(f"{wait}: the target's reader asleep in {wait} (system call now "
                         f"{harness.syscall_of(pid, pid)})",
                         lambda: harness.syscall_of(pid, pid) in SLEEP_CALLS, limit=LIMIT)
        if stop == "map delete":
            harness.sockshim("map", "delete", str(pid), "socks", "0", env=env)
        else:
            harness.sockshim("reload", str(pid), os.path.join(HERE, "rx_wake_none.json"), env=env)
        client.sendall(b"after the stop")
        got = {}

        def read():
            line = target.proc.stdout.readline()
            if line:
                got.update(json.loads(line))

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(LIMIT)
        if got.get("got") != "after the stop":
            harness.fail(f"{stop}, reader in {wait}: the reader did not wake with the bytes "
                         f"within {LIMIT} s (got {got!r}; its system call now "
                         f"{harness.syscall_of(pid, pid)})")
        harness.note(f"ok: {stop}: a reader asleep in {wait} woke and read the socket")
        client.close()


def socat_delete(runtime):
    size, block = 100 << 20, 1 << 20
    listen_port, upstream_port = harness.free_port(), harness.free_port()
    with tempfile.TemporaryDirectory(prefix="sockshim-rxwake-") as directory:
        policy = harness.forwarder_policy(directory, listen_port, upstream_port)
        env = harness.environment("shim", SOCKSHIM_POLICY=policy, SOCKSHIM_RUNTIME_DIR=runtime)
        cli_env = dict(env)
        cli_env.pop("LD_PRELOAD", None)
        upstream = socket.create_server(("127.0.0.1", upstream_port))
        upstream.settimeout(LIMIT)
        socat = subprocess.Popen(
            ["socat", "-t", "5", f"TCP-LISTEN:{listen_port},bind=127.0.0.1,reuseaddr",
             f"TCP:127.0.0.1:{upstream_port}"], env=env, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        try:
            harness.wait_for("socat listens", lambda: harness.listening(listen_port), limit=LIMIT)
            client = socket.create_connection(("127.0.0.1", listen_port), timeout=LIMIT)
            server, _ = upstream.accept()
            # Both ends are in the map once socat connected upstream.
            harness.wait_for("dump shows socat's two psocks",
                             lambda: psock_count(cli_env, socat.pid) == 2, limit=LIMIT)
            received = {"bytes": 0, "sha": hashlib.sha256(), "error": None}

            def receive():
                try:
                    server.settimeout(60)
                    while True:
                        data = server.recv(1 << 18)
                        if not data:
                            return
                        received["sha"].update(data)
                        received["bytes"] += len(data)
                except OSError as e:
                    received["error"] = repr(e)

            rx = threading.Thread(target=receive, daemon=True)
            rx.start()
            sent = hashlib.sha256()
            rng = random.Random(7)
            blocks = [rng.randbytes(block) for _ in range(4)]
            deleted = False
            for i in range(size // block):
                chunk = blocks[i % 4][i:] + blocks[i % 4][:i]
                sent.update(chunk)
                try:
                    client.sendall(chunk)
                except TimeoutError:
                    harness.fail(f"socat took nothing for {LIMIT} s after {i} MiB "
                                 f"(deleted: {deleted}): it hangs")
                if not deleted and received["bytes"] >= size // 3:
                    harness.sockshim("map", "delete", str(socat.pid), "pair", "0", env=cli_env)
                    deleted = True
                    harness.note(f"deleted key 0 after {received['bytes'] >> 20} MiB arrived")
            client.shutdown(socket.SHUT_WR)
            rx.join(60)
            if rx.is_alive():
                harness.fail(f"upstream got {received['bytes']} of {size} bytes and no EOF "
                             "within 60 s: socat hangs")
            if received["error"]:
                harness.fail(f"upstream: {received['error']}")
            if not deleted:
                harness.fail("the transfer ended before the delete")
            if received["bytes"] != size or received["sha"].digest() != sent.digest():
                harness.fail(f"upstream got {received['bytes']} bytes of {size}, "
                             f"sha256 {'equal' if received['sha'].digest() == sent.digest() else 'differs'}")
            server.close()
            client.close()
            try:
                socat.wait(timeout=20)
            except subprocess.TimeoutExpired:
                harness.fail("socat did not exit within 20 s of both sides closing")
            harness.note(f"ok: {size >> 20} MiB intact through socat with a map delete mid-way")
        finally:
            upstream.close()
            if socat.poll() is None:
                socat.kill()
            socat.wait()


def main():
    if not harness.SOCKSHIM:
        print("SKIP: SOCKSHIM_BIN is not set", flush=True)
        sys.exit(77)
    runtime = tempfile.mkdtemp(prefix="sockshim-rxwake-")
    for wait in sys.argv[1:]:
        if wait == "socat":
            socat_delete(runtime)
            continue
        for stop in ("map delete", "reload"):
            wake(wait, stop, runtime)
    harness.note("PASS")


main()
