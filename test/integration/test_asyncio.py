"""An asyncio (epoll) echo server and client, both under the shim: every
connection's bytes come back intact and the client prints what it printed
without the shim."""

import os

import harness

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "asyncio_echo.py")


def session(mode):
    port = harness.free_port()
    with harness.Server(mode, [harness.PYTHON, SCRIPT, "server", str(port)]) as srv:
        harness.wait_listening(port, srv)
        proc = harness.run(mode, [harness.PYTHON, SCRIPT, "client", str(port)], timeout=90)
    return proc.stdout.decode()


def main():
    results = {mode: session(mode) for mode in harness.MODES}
    if not results["plain"].startswith("EpollSelector\n"):
        harness.fail(f"the event loop does not use epoll: {results['plain'][:40]!r}")
    harness.note(f"ok: {results['plain'].count('connection')} connections echoed over epoll")
    harness.same_in_both(results, "the asyncio client's report")


main()
