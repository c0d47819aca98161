"""A non-blocking connect enters the policy's maps at the first sign of its
completion, whatever that sign is: writability from poll, select or epoll, the
first send, the first recv, getpeername, or a blocking send made while the
socket is still in SYN_SENT. Each time the socket is in the map (`sockshim map
lookup`) right after that call, before a byte moved, and the very first
message meets the sk_msg program: a dropped one fails with EACCES and the
psock's counters hold every byte sent."""

import json
import os
import subprocess
import tempfile

from harness import PYTHON, environment, fail, note, sockshim

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(os.path.dirname(os.path.dirname(HERE)), "policy", "examples",
                      "drop_and_loop.json")
MODES = ("poll", "select", "epoll", "send", "recv", "getpeername", "blocking-send")


def read_json(probe, what):
    line = probe.stdout.readline()
    if not line:
        fail(f"{what}: the probe exited {probe.wait()}: {probe.stderr.read()[-2000:]}")
    return json.loads(line)


def check_mode(mode, env):
    probe = subprocess.Popen([PYTHON, os.path.join(HERE, "connect_probe.py"), mode], env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        facts = read_json(probe, mode)
        (lip, lport), (rip, rport) = facts["local"], facts["remote"]
        key = f"local_ip4={lip},local_port={lport},remote_ip4={rip},remote_port={rport}"
        found = sockshim("map", "lookup", str(probe.pid), "conns", key, "--json", env=env,
                         code=None)
        if found.returncode != 0:
            fail(f"{mode}: the socket is not in the map after the {mode} call: "
                 f"{found.stderr.strip()}")
        cookie = json.loads(found.stdout)["cookie"]
        note(f"ok: {mode}: in the map right after the call (cookie {cookie})")
        probe.stdin.write("go\n")
        probe.stdin.flush()
        sent = read_json(probe, mode)["sent"]
        # The message sent by the trigger itself (send, blocking-send) must
        # have met the program too.
        first = [facts["first"]] if facts["first"] else []
        if first + sent != ["EACCES"] * (len(first) + 1) + ["sent"]:
            fail(f"{mode}: sends said {first + sent}, expected EACCES for each DROP, then sent")
        stats = sockshim("dump", str(probe.pid), "stats", "--json", env=env, code=None)
        if stats.returncode != 0:
            fail(f"{mode}: dump: {stats.stderr}")
        psocks = {p["cookie"]: p for p in json.loads(stats.stdout)["processes"][0]["psocks"]}
        tx = psocks.get(cookie, {}).get("stats", {}).get("tx", {})
        want = {"in": 11 * (len(first) + 1) + 5, "dropped": 11 * (len(first) + 1), "passed": 5}
        if any(tx.get(k) != v for k, v in want.items()):
            fail(f"{mode}: tx counters {tx}, expected {want}: a byte bypassed the program")
        note(f"ok: {mode}: every byte sent met the program (tx {want})")
        probe.stdin.write("bye\n")
        probe.stdin.flush()
        if probe.wait(timeout=20) != 0:
            fail(f"{mode}: the probe exited {probe.returncode}: {probe.stderr.read()[-2000:]}")
    finally:
        if probe.poll() is None:
            probe.kill()
            probe.wait()


def main():
    runtime = tempfile.mkdtemp(prefix="sockshim-connect-")
    env = environment("shim", SOCKSHIM_POLICY=POLICY, SOCKSHIM_RUNTIME_DIR=runtime)
    for mode in MODES:
        check_mode(mode, env)
    print("PASS non-blocking connect noticed at its first sign", flush=True)


main()
