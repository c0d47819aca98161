"""socat TCP echo through `cat`, blocking and non-blocking, client and server both
under the shim: the echoed bytes must equal what was sent, as without the shim.

usage: test_socat.py blocking|nonblocking
"""

import hashlib
import os
import sys
import tempfile

import harness

SIZE = 4 * 1024 * 1024
OPTIONS = {
    # socat's default: blocking sockets, select(); small blocks mean many calls.
    "blocking": (["-b", "1500"], ""),
    # O_NONBLOCK on both sockets, large blocks: EAGAIN and partial writes happen.
    "nonblocking": (["-b", "65536"], ",nonblock"),
}


def echo(mode, flavour, payload):
    blocks, opt = OPTIONS[flavour]
    port = harness.free_port()
    server = ["socat", "-t", "10"] + blocks + [
        f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork{opt}", "EXEC:cat"]
    with harness.Server(mode, server) as srv:
        harness.wait_listening(port, srv)
        with open(payload, "rb") as stdin:
            proc = harness.run(mode, ["socat", "-t", "10"] + blocks +
                               ["STDIO", f"TCP:127.0.0.1:{port}{opt}"],
                               timeout=60, stdin=stdin)
    return proc.stdout


def main():
    flavour = sys.argv[1]
    with tempfile.TemporaryDirectory(prefix="sockshim-socat-") as directory:
        payload = os.path.join(directory, "payload")
        data = os.urandom(SIZE)
        with open(payload, "wb") as f:
            f.write(data)
        results = {}
        for mode in harness.MODES:
            echoed = echo(mode, flavour, payload)
            if echoed != data:
                harness.fail(f"{mode}: {len(echoed)} bytes came back for {len(data)} sent "
                             f"(equal prefix: {echoed == data[:len(echoed)]})")
            harness.note(f"ok: {mode}: {SIZE} bytes echoed intact ({flavour})")
            results[mode] = hashlib.sha256(echoed).hexdigest()
    harness.same_in_both(results, f"the echoed bytes ({flavour})")


main()
