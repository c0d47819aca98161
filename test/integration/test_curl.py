"""curl fetches a 20 MB file from `python3 -m http.server`; with both processes
under the shim (the server through `sockshim run`, curl through LD_PRELOAD)
the bytes must hash the same as without it."""

import os
import tempfile

import harness

SIZE = 20 * 1024 * 1024


def fetch(mode, directory):
    port = harness.free_port()
    server = [harness.PYTHON, "-m", "http.server", "--bind", "127.0.0.1",
              "--directory", directory, str(port)]
    with harness.Server(mode, server, via_cli=True) as srv:
        harness.wait_listening(port, srv)
        out = os.path.join(directory, f"fetched-{mode}")
        proc = harness.run(mode, ["curl", "--silent", "--show-error", "--fail",
                                  "--max-time", "60", "--output", out,
                                  "--write-out", "%{http_code} %{size_download}",
                                  f"http://127.0.0.1:{port}/payload"], timeout=90)
    digest = harness.sha256_file(out)
    os.unlink(out)
    return proc.stdout.decode(), digest


def main():
    with tempfile.TemporaryDirectory(prefix="sockshim-curl-") as directory:
        payload = os.path.join(directory, "payload")
        with open(payload, "wb") as f:
            f.write(os.urandom(SIZE))
        expected = harness.sha256_file(payload)
        results = {mode: fetch(mode, directory) for mode in harness.MODES}
    for mode, (status, digest) in results.items():
        if status != f"200 {SIZE}" or digest != expected:
            harness.fail(f"{mode}: curl said {status!r}, sha256 {digest}, file's is {expected}")
        harness.note(f"ok: {mode}: 200, {SIZE} bytes, sha256 {digest[:16]}... matches the file")
    harness.same_in_both(results, "curl's status and the fetched file's sha256")


main()
