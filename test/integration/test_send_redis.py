"""redis-server and redis-cli with an sk_msg policy on the client's socket that
drops FLUSHALL: `redis-cli FLUSHALL` reports an error (the send failed with
EACCES), the keys are still there, and SET/GET work on a new connection. The
same commands without the shim flush the keys, so the policy is what kept them.
The policy's log action shows at the default log level, naming the socket.
"""

import json
import os
import re
import subprocess
import tempfile

import harness


def policy(port):
    return {
        "version": 1,
        "maps": {"clients": {"type": "sockhash", "max_entries": 64,
                             "key": ["local_ip4", "local_port", "remote_ip4", "remote_port"]}},
        "programs": {
            "insert": {"type": "sockops", "rules": [
                {"if": {"op": "active_established", "remote_port": port},
                 "do": [{"map_update": {"map": "clients", "key": "self", "flags": "BPF_ANY"}}]}]},
            "no_flushall": {"type": "sk_msg", "rules": [
                {"if": {"any": [{"data": {"contains": "FLUSHALL"}},
                                {"data": {"contains": "flushall"}}]},
                 "do": [{"log": "dropped FLUSHALL"}, "drop"]},
                {"do": ["pass"]}]}},
        "attach": [{"program": "no_flushall", "map": "clients",
                    "attach_type": "BPF_SK_MSG_VERDICT"}],
        "sockops": ["insert"],
    }


def cli(port, args, env_extra=None, mode="plain"):
    env = harness.environment(mode, **(env_extra or {}))
    return subprocess.run(["redis-cli", "-p", str(port)] + args, env=env,
                          capture_output=True, timeout=20)


def scenario(mode, policy_path):
    port = harness.free_port()
    server = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
              "--save", "", "--appendonly", "no"]
    # The server runs without the shim: the policy is on the client's socket.
    with harness.Server("plain", server) as srv:
        harness.wait_listening(port, srv)
        with open(policy_path, "w") as f:
            json.dump(policy(port), f)
        extra = {"SOCKSHIM_POLICY": policy_path}
        for i in range(3):
            r = cli(port, ["SET", f"key{i}", f"value{i}"])
            if r.stdout.strip() != b"OK":
                harness.fail(f"SET key{i}: {r.stdout!r} {r.stderr!r}")
        flush = cli(port, ["FLUSHALL"], extra, mode)
        out = (flush.stdout + flush.stderr).decode(errors="replace")
        harness.check_loaded(mode, flush.stderr.decode(errors="replace"), "redis-cli")
        keys = cli(port, ["DBSIZE"]).stdout.strip()
        logged = ""
        if mode == "shim":
            # At the default log level (no SOCKSHIM_LOG) the log action shows.
            env = harness.environment(mode, SOCKSHIM_POLICY=policy_path)
            env.pop("SOCKSHIM_LOG")
            logged = subprocess.run(["redis-cli", "-p", str(port), "FLUSHALL"], env=env,
                                    capture_output=True, timeout=20).stderr.decode(errors="replace")
        setget = cli(port, ["SET", "fresh", "yes"], extra, mode).stdout.strip()
        get = cli(port, ["GET", "fresh"], extra, mode).stdout.strip()
        return {"flush_status": flush.returncode, "flush_output": out.strip().splitlines()[-1],
                "logged": logged, "port": port,
                "dbsize": keys.decode(), "set": setget.decode(), "get": get.decode()}


def main():
    with tempfile.TemporaryDirectory() as tmp:
        plain = scenario("plain", os.path.join(tmp, "plain.json"))
        shim = scenario("shim", os.path.join(tmp, "shim.json"))
    harness.note(f"plain: {plain}")
    harness.note(f"shim:  {shim}")
    if plain["flush_output"] != "OK" or plain["dbsize"] != "0":
        harness.fail(f"without the shim FLUSHALL should flush: {plain}")
    if shim["flush_status"] == 0 or "Permission denied" not in shim["flush_output"]:
        harness.fail(f"under the shim redis-cli FLUSHALL should report EACCES: {shim}")
    if shim["dbsize"] != "3":
        harness.fail(f"under the shim the 3 keys should remain: {shim}")
    # The log action's line, at warn, names the socket by its addresses (and
    # by its fd: sk_msg runs for a send on one).
    line = (r"sockshim\[\d+\] warn: log: no_flushall: dropped FLUSHALL "
            rf"\(socket 127\.0\.0\.1:\d+ -> 127\.0\.0\.1:{shim['port']}, cookie \d+, fd \d+\)\n")
    if not re.search(line, shim["logged"]):
        harness.fail(f"the log action's line at the default level: {shim['logged']!r}")
    if shim["set"] != "OK" or shim["get"] != "yes":
        harness.fail(f"SET/GET on a new connection under the shim: {shim}")
    harness.note("PASS: FLUSHALL dropped on the client's socket, keys kept, SET/GET work")


if __name__ == "__main__":
    main()
