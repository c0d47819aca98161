"""curl fetches a 20 MB file from `python3 -m http.server`; with both processes
under the shim (the server through `sockshim run`, curl through LD_PRELOAD)
the bytes must hash the same as without it."""

import os
import subprocess
import sys
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


def curl_runs_under_runtimes():
    """Under a sanitized build: whether curl starts at all with the sanitizer
    runtimes preloaded and no shim (Debian 12's curl deadlocks in setlocale
    under libasan.so.8)."""
    env = dict(os.environ, LD_PRELOAD=":".join(harness.RUNTIMES))
    harness.host_options(env)
    try:
        return subprocess.run(["curl", "--version"], env=env, capture_output=True,
                              timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def main():
    if harness.RUNTIMES and not curl_runs_under_runtimes():
        print(f"SKIP: curl does not start with {':'.join(harness.RUNTIMES)} preloaded, "
              "even without the shim", flush=True)
        sys.exit(77)
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
