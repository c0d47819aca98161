"""io_uring under the shim: io_uring_setup (through syscall(), as libuv calls
it) fails with ENOSYS while a policy is loaded, and works as without the shim
when none is. Node.js with libuv's io_uring forced on (UV_USE_IO_URING=1) then
has no ring at all under a policy, so its epoll registrations go through
epoll_ctl, which the shim sees, and its HTTP server still answers.

usage: test_io_uring.py URING_PROBE
"""

import os
import select
import subprocess
import sys
import time
import urllib.request

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "..", "..", "policy", "examples", "peer_acceleration.json")
NODE_SERVER = """
require('http').createServer((q, r) => r.end('hello from node'))
  .listen(+process.argv[1], '127.0.0.1', () => console.log('listening'));
"""
LOG_LINE = "io_uring_setup refused (ENOSYS) while a policy is loaded"



def first_line(proc, timeout=20):
    """The first line proc prints, or "" when it prints none within timeout."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    return proc.stdout.readline().decode().strip() if ready else ""

def probe(binary, mode, **extra):
    env = harness.environment(mode, **extra)
    proc = subprocess.run([binary], env=env, capture_output=True, timeout=30)
    err = proc.stderr.decode(errors="replace")
    harness.check_loaded(mode, err, "uring_probe")
    return proc.stdout.decode().strip(), err


def check_probe(binary):
    plain, _ = probe(binary, "plain")
    if plain != "ring":
        harness.fail(f"io_uring_setup fails without the shim ({plain}): cannot test the refusal")
    shim, _ = probe(binary, "shim")
    if shim != "ring":
        harness.fail(f"with the shim and no policy io_uring_setup gave {shim}, not a ring")
    refused, err = probe(binary, "shim", SOCKSHIM_POLICY=POLICY)
    if refused != "ENOSYS":
        harness.fail(f"under a policy io_uring_setup gave {refused}, not ENOSYS")
    if err.count(LOG_LINE) != 1:
        harness.fail(f"the refusal is not logged exactly once: {err[-800:]!r}")
    harness.note("ok: io_uring_setup: ring without a policy, ENOSYS (logged once) with one")


def io_uring_fds(pid):
    """How many of pid's fds are io_uring instances."""
    count = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{name}") == "anon_inode:[io_uring]"
        except OSError:
            pass
    return count


def node_rings(mode, **extra):
    """Starts a Node HTTP server with io_uring forced on, fetches a page from it,
    and returns (the page, the io_uring fds it holds)."""
    port = harness.free_port()
    env = harness.environment(mode, UV_USE_IO_URING="1", **extra)
    proc = subprocess.Popen(["node", "-e", NODE_SERVER, str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        if first_line(proc) != "listening":
            proc.kill()
            harness.fail(f"{mode}: node did not start: {proc.communicate()[1].decode()[-800:]}")
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    page = r.read().decode()
                break
            except OSError as e:
                if time.monotonic() > deadline:
                    harness.fail(f"{mode}: the node server does not answer: {e}")
                time.sleep(0.1)
        return page, io_uring_fds(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def check_node():
    page, rings = node_rings("plain")
    if rings == 0:
        harness.fail("node with UV_USE_IO_URING=1 made no ring without the shim: "
                     "this libuv does not use io_uring, the test proves nothing")
    harness.note(f"ok: plain node holds {rings} io_uring fds and answers {page!r}")
    page_shim, rings_shim = node_rings("shim", SOCKSHIM_POLICY=POLICY)
    if rings_shim != 0:
        harness.fail(f"node under a policy still holds {rings_shim} io_uring fds")
    if page_shim != page:
        harness.fail(f"node under a policy answered {page_shim!r}, not {page!r}")
    harness.note("ok: node under a policy has no ring (epoll_ctl fallback) and answers the same")


def main():
    check_probe(sys.argv[1])
    check_node()


main()
