"""Waits already asleep when a psock is born (issue 11): a thread that began
to wait on a socket in poll, select, ppoll or pselect before the socket had a
psock must see the bytes the psock's verdict passes, as in the kernel, where
inserting a socket into a map never leaves a poller blind.

poll_birth_probe, under the shim with poll_birth.json (a 64-byte fixed-frame
parser and a pass verdict, no sockops), accepts a connection and blocks four
threads on it, one in each call, with a 20 s timeout. Once /proc shows each
asleep in its system call, `sockshim map update` puts the socket in the map
and the client sends 20 bytes of a frame; once `dump` shows the receive
engine holding them, each wait must have gone to sleep only a few times
(no loop), and the client sends the other 44. Each wait must
return once, readable, only after the whole frame was sent (a partial frame
is not readable), and a MSG_DONTWAIT read must then get the frame.
"""

import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import threading

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "poll_birth.json")
LIMIT = 15  # seconds for any one condition
# The system calls a wait sleeps in (x86_64 and aarch64): select, poll and
# their variants (the shim waits for all four in ppoll).
SLEEP_CALLS = {23, 270, 7, 271, 73, 72}
FRAME = bytes(65 + i % 26 for i in range(64))
PART = 20


def sleeps(pid, tid):
    """How many times the thread went to sleep (voluntary context switches)."""
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt"))


def rx_in(env, pid):
    """Bytes the receive engine read from the probe's socket (None without a psock)."""
    psocks = harness.dump(pid, env=env).get("psocks", [])
    return psocks[0]["stats"]["rx"]["in"] if psocks else None


def main():
    if not harness.SOCKSHIM:
        print("SKIP: SOCKSHIM_BIN is not set", flush=True)
        sys.exit(77)
    probe = sys.argv[1]
    env = harness.cli_environment(tempfile.mkdtemp(prefix="sockshim-birth-"))
    proc = subprocess.Popen([harness.SOCKSHIM, "run", "-p", POLICY, "--", probe], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put("")],
                     daemon=True).start()

    def read(what, limit=LIMIT):
        try:
            line = lines.get(timeout=limit)
        except queue.Empty:
            harness.fail(f"no answer from the probe within {limit} s ({what})")
        if not line:
            harness.fail(f"the probe exited {proc.wait()} ({what})")
        return json.loads(line)

    try:
        facts = read("its pid and port")
        pid = facts["pid"]
        client = socket.create_connection(("127.0.0.1", facts["port"]), timeout=LIMIT)
        waiting = read("its waits started")
        tids = waiting["tids"]
        harness.wait_for("the four waits asleep (system calls now "
                         f"{[harness.syscall_of(pid, t) for t in tids]})",
                         lambda: all(harness.syscall_of(pid, t) in SLEEP_CALLS for t in tids), limit=LIMIT)
        harness.sockshim("map", "update", str(pid), "socks", "0", str(waiting["fd"]), env=env)
        client.sendall(FRAME[:PART])
        harness.wait_for(f"the receive engine holding the first {PART} bytes",
                         lambda: rx_in(env, pid) == PART, limit=LIMIT)
        # Asleep, not looping: the insertion woke each wait once, the partial
        # frame not at all (a loop would have slept hundreds of times by now).
        woken = [sleeps(pid, t) for t in tids]
        if max(woken) > 8:
            harness.fail(f"the waits went to sleep {woken} times by the partial frame: a loop")
        proc.stdin.write("rest\n")
        proc.stdin.flush()
        read("rest acknowledged")
        client.sendall(FRAME[PART:])
        result = read("the waits returned", limit=30)
        for w in result["waits"]:
            if w["r"] != 1 or not w["readable"] or w["early"]:
                harness.fail(f"{w['how']}: returned {w['r']} (errno {w['errno']}), readable "
                             f"{w['readable']}, after {w['ms']} ms, "
                             f"{'before' if w['early'] else 'after'} the whole frame was sent; "
                             f"all: {result['waits']}")
        if result["read"] != len(FRAME) or result["bytes"] != FRAME.decode():
            harness.fail(f"the read after the waits: {result['read']} (errno "
                         f"{result['read_errno']}) {result['bytes']!r}, not the 64-byte frame")
        harness.note("ok: poll, select, ppoll and pselect asleep before the insertion woke "
                     "readable for the frame the verdict passed, not for the partial one")
        client.close()
        if proc.wait(timeout=LIMIT) != 0:
            harness.fail(f"the probe exited {proc.returncode}")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    harness.note("PASS")


main()
