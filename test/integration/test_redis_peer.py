"""redis-server and redis-benchmark, two processes each under
policy/examples/peer_acceleration.json in one domain: what each sends goes
through the sk_msg ingress redirect into the other process's socket (its
shared ring), not through loopback TCP. Every command is correct
(redis-benchmark's INCR and LPUSH counts, and a probe client checking each
reply of 3000 commands), the server's dump shows bytes redirected, and the
server's socket of the probe's connection received (almost) nothing over TCP
(tcpi_bytes_received, from `ss -ti`). SKIP (77) without Debian's redis."""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "..", "..", "policy", "examples", "peer_acceleration.json")
PROBE = os.path.join(HERE, "redis_peer_probe.py")
REQUESTS = 20000


def redirected(pid, env):
    """Bytes the process's psocks sent through a redirect, by its dump."""
    d = harness.dump(pid, "stats", env=env)
    return sum(p["stats"]["tx"]["redirected"] for p in d.get("psocks", []))


def server_bytes_received(port, client_port):
    """tcpi_bytes_received of the server's socket of one connection (ss -ti)."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    out = subprocess.run(["ss", "-tniH", "state", "established",
                          f"( sport = :{port} and dport = :{client_port} )"],
                         capture_output=True, text=True, env=env, timeout=10).stdout
    if f":{client_port}" not in out:
        harness.fail(f"ss does not show the server's socket of the probe's connection:\n{out}")
    m = re.search(r"bytes_received:(\d+)", out)
    return int(m.group(1)) if m else 0


def main():
    for tool in ("redis-server", "redis-benchmark", "redis-cli", "ss"):
        if not shutil.which(tool):
            harness.note(f"SKIP: {tool} is not installed")
            return 77
    runtime = tempfile.mkdtemp(prefix="sockshim-redis-peer-")
    os.chmod(runtime, 0o700)
    policies = tempfile.mkdtemp(prefix="sockshim-redis-peer-policy-")
    policy = os.path.join(policies, "peer.json")
    shutil.copy(POLICY, policy)
    env = harness.environment("shim", SOCKSHIM_POLICY=policy, SOCKSHIM_RUNTIME_DIR=runtime)
    cli_env = harness.cli_environment(runtime)
    port = harness.free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--save", "", "--appendonly", "no"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        harness.wait_for("redis-server listening", lambda: harness.listening(port), limit=15)
        bench = subprocess.run(["redis-benchmark", "-p", str(port), "-n", str(REQUESTS), "-c", "8",
                                "-t", "set,get,incr,lpush", "-q"], env=env,
                               capture_output=True, timeout=180)
        err = bench.stderr.decode(errors="replace")
        harness.check_loaded("shim", err, "redis-benchmark")
        if bench.returncode != 0:
            harness.fail(f"redis-benchmark exited {bench.returncode}: {err[-2000:]}")

        def cli(*args):
            r = subprocess.run(["redis-cli", "-p", str(port), *args], env=env,
                               capture_output=True, timeout=30)
            return r.stdout.decode().strip()

        counter, llen = cli("GET", "counter:__rand_int__"), cli("LLEN", "mylist")
        if counter != str(REQUESTS) or llen != str(REQUESTS):
            harness.fail(f"after {REQUESTS} INCR and LPUSH: counter {counter!r}, list {llen!r}")
        harness.note(f"ok: redis-benchmark's {REQUESTS} INCR and LPUSH all counted")

        probe = subprocess.Popen([harness.PYTHON, PROBE, str(port), "1000"], env=env,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        try:
            line = probe.stdout.readline()
            if not line:
                harness.fail(f"the probe failed: {probe.stderr.read().decode()[-2000:]}")
            got = json.loads(line)
            kernel = server_bytes_received(port, got["port"])
            through = redirected(server.pid, cli_env)
            harness.note(f"probe: {got['checked']} replies checked, {got['sent']} bytes sent; "
                         f"server socket received {kernel} over TCP, the client "
                         f"{got['tcp_bytes_received']}; server redirected {through} bytes")
            if kernel > got["sent"] // 100 or got["tcp_bytes_received"] > got["sent"] // 100:
                harness.fail("the connection's bytes went through loopback TCP")
            if through == 0:
                harness.fail("the server's dump shows no byte redirected")
        finally:
            probe.stdin.close()
            probe.wait(timeout=30)
        harness.note("ok: every reply correct, the bytes went through the redirect, not TCP")
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(runtime, ignore_errors=True)
        shutil.rmtree(policies, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
