"""`sockshim ps` groups processes by domain: two processes under one policy
file, one under another file (the same text), one under SOCKSHIM_DOMAIN: three
groups with the right members, in the text and --json output; a fork child
and its exec'd image are members too; a `kill -9`'d member is gone from its
domain at the next look; the domain files are 0700/0600; and another user
(nobody, when this runs as root) is refused the domain, logged, and runs on."""

import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile

from harness import (LIBRARY, PYTHON, Target, cli_environment, fail, note, sockshim, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
MEMBER = os.path.join(HERE, "domain_member.py")
FORWARDER = os.path.join(HERE, "..", "..", "policy", "examples", "forwarder.json")


def ps_json(env):
    return json.loads(sockshim("ps", "--json", env=env).stdout)


def groups(infos):
    """{domain key: sorted pids} from ps --json (key None: no domain), checking
    that each group's processes are next to each other."""
    out, order = {}, []
    for info in infos:
        key = info["domain"]["key"] if info.get("domain") else None
        if order and order[-1] != key and key in out:
            fail(f"ps --json: the processes of domain {key} are not together: {infos!r}")
        if not order or order[-1] != key:
            order.append(key)
        out.setdefault(key, []).append(info["pid"])
    return {k: sorted(v) for k, v in out.items()}


def members(info):
    return sorted(m["pid"] for m in info["domain"]["members"])


def alive(pid):
    """Whether pid runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def second_user(env, policy, key, pids_before):
    """nobody, with the same runtime directory and policy path: refused, logged,
    runs on; the domain is unchanged."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        note("skipped: another user (needs root and setpriv)")
        return
    child_env = dict(env, LD_PRELOAD=LIBRARY, SOCKSHIM_POLICY=policy)
    proc = subprocess.run(
        ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
         PYTHON, "-c", "import socket; socket.socket(); print('ran')"],
        env=child_env, capture_output=True, text=True, timeout=30)
    if proc.returncode != 0 or proc.stdout.strip() != "ran" \
            or f"domain {key}:" not in proc.stderr \
            or "running without a domain (pass-through)" not in proc.stderr \
            or "belongs to uid 0, not to uid 65534" not in proc.stderr:
        fail(f"nobody under the same policy: exit {proc.returncode}, stdout {proc.stdout!r}, "
             f"stderr {proc.stderr!r}")
    after = groups(ps_json(env))
    if after.get(key) != pids_before:
        fail(f"domain {key} changed after nobody's attempt: {after.get(key)} != {pids_before}")
    note(f"ok: nobody is refused ({proc.stderr.strip().splitlines()[-1]}) and runs on")


def main():
    runtime = tempfile.mkdtemp(prefix="sockshim-domains-")
    os.chmod(runtime, 0o700)
    policies = tempfile.mkdtemp(prefix="sockshim-domain-policies-")
    os.chmod(policies, 0o755)  # readable by nobody, for the second-user check
    a, b = os.path.join(policies, "a.json"), os.path.join(policies, "b.json")
    for path in (a, b):
        shutil.copy(FORWARDER, path)
        os.chmod(path, 0o644)
    env = cli_environment(runtime)
    named = dict(env, SOCKSHIM_DOMAIN="ps-test")
    key_a, key_b, key_named = f"policy:{a}", f"policy:{b}", "name:ps-test"

    with Target(MEMBER, policy=a, env=env) as t1, Target(MEMBER, policy=a, env=env) as t2, \
            Target(MEMBER, policy=b, env=env) as t3, Target(MEMBER, policy=a, env=named) as t4:
        pid = {t: t.read()["pid"] for t in (t1, t2, t3, t4)}
        expected = {key_a: sorted([pid[t1], pid[t2]]), key_b: [pid[t3]],
                    key_named: [pid[t4]]}
        infos = wait_for("four processes in ps", lambda: (lambda ps: ps if len(ps) == 4 else None)(
            [i for i in ps_json(env) if i["pid"] in pid.values()]))
        if groups(infos) != expected:
            fail(f"ps --json groups {groups(infos)} != {expected}")
        for info in infos:
            if members(info) != expected[info["domain"]["key"]] or info["domain"]["error"]:
                fail(f"pid {info['pid']}: domain {info['domain']!r}")
        note(f"ok: ps --json: three domains {expected}")

        text = sockshim("ps", env=env).stdout.splitlines()
        if text[0].split() != ["PID", "COMMAND", "POLICY", "SOCKETS", "PSOCKS", "UPTIME"]:
            fail(f"ps header: {text[0]!r}")
        for key, pids in expected.items():
            at = [i for i, line in enumerate(text) if line.startswith(f"== domain {key} (members ")]
            if len(at) != 1 or f"(members {' '.join(map(str, pids))};" not in text[at[0]] \
                    or [int(line.split()[0]) for line in text[at[0] + 1:at[0] + 1 + len(pids)]] \
                    != pids:
                fail(f"ps text: domain {key} with {pids}:\n" + "\n".join(text))
        note("ok: ps prints each domain's heading, then its processes")

        for info in infos:
            directory = info["domain"]["dir"]
            modes = (stat.S_IMODE(os.stat(directory).st_mode),
                     stat.S_IMODE(os.stat(os.path.join(directory, "arena")).st_mode))
            if modes != (0o700, 0o600) or os.path.dirname(directory) != runtime:
                fail(f"{directory}: modes {tuple(map(oct, modes))}")
        note("ok: domain directories 0700 and arenas 0600, in the runtime directory")

        # A fork child joins its parent's domain; its exec'd image keeps its place.
        child = t1.ask("fork")["child"]
        info1 = lambda: next(i for i in ps_json(env) if i["pid"] == pid[t1])
        wait_for("the fork child in its domain", lambda: child in members(info1()))
        t1.ask("exec")
        wait_for("the exec'd child re-attached", lambda: any(
            "exec'd" in line for line in open(f"/proc/{child}/cmdline").read().split("\0")))
        wait_for("the exec'd child a member, once",
                 lambda: members(info1()) == sorted([pid[t1], pid[t2], child]))
        note(f"ok: fork child {child} joined, and is a member once after its exec")
        os.kill(child, signal.SIGKILL)

        # kill -9: gone from its domain at the first look after it died.
        os.kill(pid[t2], signal.SIGKILL)
        wait_for("the killed member to die", lambda: not alive(pid[t2]) and not alive(child))
        infos = [i for i in ps_json(env) if i["pid"] in pid.values()]
        if groups(infos) != {key_a: [pid[t1]], key_b: [pid[t3]], key_named: [pid[t4]]} \
                or members(next(i for i in infos if i["pid"] == pid[t1])) != [pid[t1]]:
            fail(f"after kill -9 of {pid[t2]}: {infos!r}")
        note(f"ok: kill -9'd member {pid[t2]} (and the child) gone from domain {key_a}")

        second_user(env, a, key_a, [pid[t1]])
        t2.proc.wait()
    shutil.rmtree(runtime, ignore_errors=True)
    shutil.rmtree(policies, ignore_errors=True)
    note("PASS")


if __name__ == "__main__":
    main()
