"""socat as a TCP forwarder under policy/examples/forwarder.json (ports set to
this run's): sockops put the accepted socket at key 0 and the connected one at
key 1 of a sockmap, and the stream verdict redirects each one's bytes out of
the other (egress). A client and an upstream server (this process, not under
the shim) push 100 MiB each way at once; each side must receive exactly what
the other sent, socat's own reads must return no data (socat -v logs every
block it transfers: it must log none; `sockshim dump` must count every byte
in and redirected on both psocks), and socat must exit once both sides have
closed.

Without the shim the same run (256 KiB each way) checks the client and upstream
logic and that socat -v does log the blocks it forwards itself.
"""

import hashlib
import json
import os
import random
import re
import socket
import subprocess
import tempfile
import threading
import time

import harness

SIZES = {"plain": 256 << 10, "shim": 100 << 20}  # socat -v logs slowly
CHUNK = 64 << 10
DEADLINE = 120  # seconds for the whole transfer
SOCAT_BLOCK = re.compile(r"^[<>] \d{4}/\d\d/\d\d .* length=\d+", re.M)


class Stream:
    """Both directions of one TCP connection: sends `size` seeded pseudo-random
    bytes while receiving `size` bytes, hashing both."""

    def __init__(self, sock, seed, size, wait_first_byte=False):
        self.sock, self.seed, self.size = sock, seed, size
        self.sent = hashlib.sha256()
        self.received = hashlib.sha256()
        self.received_bytes = 0
        self.first_byte = threading.Event()
        self.wait_first_byte = wait_first_byte
        self.error = None

    def send(self):
        try:
            # The client waits for upstream's first bytes: they prove socat's
            # upstream socket is in the map, so the verdict on the client side
            # finds key 1 (before that, the kernel would drop them too).
            if self.wait_first_byte and not self.first_byte.wait(DEADLINE):
                raise TimeoutError("no byte arrived from the other side")
            rng = random.Random(self.seed)
            for _ in range(self.size // CHUNK):
                chunk = rng.randbytes(CHUNK)
                self.sent.update(chunk)
                self.sock.sendall(chunk)
        except Exception as e:  # reported by the test, not the thread
            self.error = f"send: {e!r}"

    def receive(self):
        try:
            while self.received_bytes < self.size:
                data = self.sock.recv(1 << 18)
                if not data:
                    raise EOFError(f"EOF after {self.received_bytes} bytes")
                self.received.update(data)
                self.received_bytes += len(data)
                self.first_byte.set()
        except Exception as e:
            self.error = f"receive: {e!r}"

    def run(self):
        threads = [threading.Thread(target=self.send, daemon=True),
                   threading.Thread(target=self.receive, daemon=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def transfer(mode, directory):
    size = SIZES[mode]
    listen_port, upstream_port = harness.free_port(), harness.free_port()
    policy = harness.forwarder_policy(directory, listen_port, upstream_port)
    upstream = socket.create_server(("127.0.0.1", upstream_port))
    upstream.settimeout(DEADLINE)
    socat_err = os.path.join(directory, f"socat-{mode}.err")
    env = harness.environment(mode, SOCKSHIM_POLICY=policy)
    with open(socat_err, "wb") as err:
        socat = subprocess.Popen(
            ["socat", "-v", "-t", "10", f"TCP-LISTEN:{listen_port},bind=127.0.0.1,reuseaddr",
             f"TCP:127.0.0.1:{upstream_port}"], env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        client = connect_when_listening(listen_port, socat)
        client.settimeout(DEADLINE)
        server, _ = upstream.accept()
        server.settimeout(DEADLINE)
        ends = {"client": Stream(client, 1, size, wait_first_byte=True),
                "upstream": Stream(server, 2, size)}
        threads = [threading.Thread(target=s.run, daemon=True) for s in ends.values()]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(max(0.0, started + DEADLINE - time.monotonic()))
        elapsed = time.monotonic() - started
        if any(t.is_alive() for t in threads):
            harness.fail(f"{mode}: the transfer did not finish within {DEADLINE} s "
                         f"(client got {ends['client'].received_bytes}, "
                         f"upstream got {ends['upstream'].received_bytes} of {size})")
        for name, s in ends.items():
            if s.error:
                harness.fail(f"{mode}: {name}: {s.error}")
        if ends["client"].sent.digest() != ends["upstream"].received.digest():
            harness.fail(f"{mode}: upstream received other bytes than the client sent")
        if ends["upstream"].sent.digest() != ends["client"].received.digest():
            harness.fail(f"{mode}: the client received other bytes than upstream sent")
        harness.note(f"ok: {mode}: {size >> 10} KiB each way intact in {elapsed:.1f} s")
        if mode == "shim":
            check_counters(socat.pid, env, size, listen_port, upstream_port)
        client.close()
        expect_eof(server, mode)
        server.close()
        try:
            socat.wait(timeout=20)
        except subprocess.TimeoutExpired:
            harness.fail(f"{mode}: socat did not exit within 20 s of both sides closing")
    finally:
        upstream.close()
        if socat.poll() is None:
            socat.kill()
            socat.wait()
    with open(socat_err, errors="replace") as f:
        log = f.read()
    harness.check_loaded(mode, log, "socat")
    return log


def connect_when_listening(port, proc, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            harness.fail(f"socat exited early with {proc.returncode}")
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1)
        except OSError:
            time.sleep(0.05)
    harness.fail(f"socat does not listen on {port} after {timeout} s")


def expect_eof(sock, mode):
    """The client's close reaches upstream through socat (socat saw EOF)."""
    try:
        data = sock.recv(1)
    except OSError as e:
        harness.fail(f"{mode}: upstream got {e!r} instead of EOF after the client closed")
    if data:
        harness.fail(f"{mode}: upstream got more bytes after the transfer")


def check_counters(pid, env, size, listen_port, upstream_port):
    """socat's two psocks each took `size` bytes in and redirected all of them."""
    proc = subprocess.run([harness.SOCKSHIM, "dump", str(pid), "stats", "--json"], env=env,
                          capture_output=True, text=True, timeout=20)
    if proc.returncode != 0:
        harness.fail(f"sockshim dump exited {proc.returncode}: {proc.stderr[-500:]}")
    psocks = json.loads(proc.stdout)["processes"][0].get("psocks", [])
    ends = {"accepted": f"127.0.0.1:{listen_port}", "connected": f"127.0.0.1:{upstream_port}"}
    for name, address in ends.items():
        found = [p for p in psocks if address in (p.get("local"), p.get("remote"))]
        if len(found) != 1:
            harness.fail(f"socat's {name} socket ({address}): {len(found)} psocks in {psocks}")
        rx = found[0]["stats"]["rx"]
        if rx["in"] != size or rx["redirected"] != size or rx["dropped"] != 0:
            harness.fail(f"socat's {name} socket: rx counters {rx}, expected {size} in and "
                         "redirected")
    harness.note(f"ok: both psocks of socat took in and redirected {size} bytes")


def main():
    with tempfile.TemporaryDirectory(prefix="sockshim-socat-fwd-") as directory:
        plain_log = transfer("plain", directory)
        if not SOCAT_BLOCK.search(plain_log):
            harness.fail("socat -v logged no block without the shim: the check below proves "
                         f"nothing (stderr: {plain_log[:300]!r})")
        shim_log = transfer("shim", directory)
        blocks = SOCAT_BLOCK.findall(shim_log)
        if blocks:
            harness.fail(f"socat itself read {len(blocks)} blocks under the shim, e.g. "
                         f"{blocks[0]!r}: the bytes were not forwarded by the stream verdict")
        harness.note("PASS: 100 MiB each way forwarded by the stream verdict; socat read nothing")


main()
