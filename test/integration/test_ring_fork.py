"""A domain socket's ingress queue is shared by its holders, and a redirect
reaches a socket another process holds. Under
policy/examples/peer_acceleration.json two processes stream 100 MB each way
at once through the sk_msg ingress redirect, then each shuts its sending
side: a process and its fork child on the two ends of a connection the
parent made ("fork": both hold both sockets, each reads the bytes the other
queued), and two unrelated processes, one accepting and one connecting
("split": each redirects into the other's ring). Each side reads exactly
what the other sent (sha256) and then EOF; neither socket received (almost)
anything over TCP (two processes: what was sent before the reader's ring
existed, less than 5%). Run with both sides on blocking reads, and with the
child on asyncio."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
PROGRAM = os.path.join(HERE, "ring_fork_stream.py")
POLICY = os.path.join(HERE, "..", "..", "policy", "examples", "peer_acceleration.json")
MEGABYTES = 100


def scenario(runtime, policy, parent_mode, child_mode, how):
    env = harness.environment("shim", SOCKSHIM_POLICY=policy, SOCKSHIM_RUNTIME_DIR=runtime)
    argv = [harness.PYTHON, PROGRAM, str(MEGABYTES), parent_mode, child_mode, how]
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=150)
    except subprocess.TimeoutExpired:
        harness.fail(f"{parent_mode}/{child_mode}: the streams did not finish within 150 s")
    err = proc.stderr.decode(errors="replace")
    harness.check_loaded("shim", err, "python3")
    if proc.returncode != 0:
        harness.fail(f"{parent_mode}/{child_mode}: exited {proc.returncode}: {err[-2000:]}")
    sides = {r["role"]: r for r in map(json.loads, proc.stdout.decode().split("\n")[:-1])}
    if set(sides) != {"parent", "child"} or sides["parent"]["child_status"] != 0:
        harness.fail(f"{parent_mode}/{child_mode}: not both sides finished: {sides} {err[-2000:]}")
    total = MEGABYTES * 1000000
    for me, peer in (("parent", "child"), ("child", "parent")):
        got = sides[me]
        if got["read"] != total or got["read_sha"] != sides[peer]["sent_sha"]:
            harness.fail(f"{parent_mode}/{child_mode}: the {me} read {got['read']} bytes "
                         f"(sha256 {got['read_sha']}), the {peer} sent {total} "
                         f"(sha256 {sides[peer]['sent_sha']})")
        # A few bytes may cross before sockops has put both ends in the map;
        # with two processes, also what one sent before the other's first
        # read attached its ring (they come first: the sha256 says so).
        if got["tcp_bytes_received"] > (total // 1000 if how == "fork" else total // 20):
            harness.fail(f"{parent_mode}/{child_mode}: the {me}'s socket received "
                         f"{got['tcp_bytes_received']} bytes over TCP")
    harness.note(f"ok: {how} {parent_mode}/{child_mode}: {MEGABYTES} MB each way, "
                 f"sha256 equal, EOF after the last byte, over TCP: parent "
                 f"{sides['parent']['tcp_bytes_received']}, child "
                 f"{sides['child']['tcp_bytes_received']} bytes")


def main():
    runtime = tempfile.mkdtemp(prefix="sockshim-ring-fork-")
    os.chmod(runtime, 0o700)
    policies = tempfile.mkdtemp(prefix="sockshim-ring-fork-policy-")
    policy = os.path.join(policies, "peer.json")
    shutil.copy(POLICY, policy)
    try:
        scenario(runtime, policy, "blocking", "blocking", "fork")
        scenario(runtime, policy, "blocking", "asyncio", "fork")
        scenario(runtime, policy, "blocking", "blocking", "split")
        scenario(runtime, policy, "blocking", "asyncio", "split")
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
        shutil.rmtree(policies, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
