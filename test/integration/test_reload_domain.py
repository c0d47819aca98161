"""`sockshim reload` in a domain: two processes under one policy file are one
domain; a bad policy given to one of them is refused and neither changes; a
good one is run by both by the time reload returns (each answers for itself);
a member started afterwards runs its own file until the next reload."""

import errno
import os
import tempfile

from harness import Target, cli_environment, fail, note, sockshim

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "reload_target.py")


def main():
    env = cli_environment(tempfile.mkdtemp(prefix="sockshim-reload-domain-"))
    x = os.path.join(env["SOCKSHIM_RUNTIME_DIR"], "x.json")
    with open(os.path.join(HERE, "reload_drop_x.json")) as f, open(x, "w") as out:
        out.write(f.read())  # the domain's key is this copy's path
    y = os.path.join(HERE, "reload_drop_y.json")
    bad = os.path.join(env["SOCKSHIM_RUNTIME_DIR"], "bad.json")
    with open(bad, "w") as f:
        f.write('{"version": 1, "maps": {"socks": {"type": "sockhash"}}}\n')

    def expect(target, msg, delivered, when):
        r = target.tell(msg)
        ok = r == f'{{"sent": {len(msg)}, "got": "{msg}"}}' if delivered \
            else r == f'{{"error": {errno.EACCES}}}'
        if not ok:
            fail(f"{when}: pid {target.pid} {msg}: {r}, expected "
                 f"{'delivery' if delivered else 'EACCES'}")

    a = Target(TARGET, policy=x, env=env, exit_line=None)
    b = Target(TARGET, policy=x, env=env, exit_line=None)
    with a, b:
        pa, pb = str(a.read()["pid"]), str(b.read()["pid"])
        for t in (a, b):
            expect(t, "X1", False, "under x.json")
            expect(t, "Y1", True, "under x.json")

        r = sockshim("reload", pa, bad, env=env, code=None)
        if r.returncode != 1 or "policy refused, the old one stays:" not in r.stderr:
            fail(f"reload of a bad policy: {r.returncode} {r.stdout!r} {r.stderr!r}")
        for t in (a, b):
            expect(t, "X2", False, "after the refused reload")
            expect(t, "Y2", True, "after the refused reload")
        note("ok: a bad policy is refused and neither member changes")

        r = sockshim("reload", pa, y, env=env, code=None)
        if r.returncode != 0 or f"domain member {pb}: reloaded" not in r.stdout:
            fail(f"reload in the domain: {r.returncode} {r.stdout!r} {r.stderr!r}")
        for t in (a, b):  # asked right after reload returned
            expect(t, "Y3", False, "after the reload")
            expect(t, "X3", True, "after the reload")
        note("ok: reload returns once both members run the new policy")

        # A member that starts afterwards runs its own file (an earlier
        # reload's text may outlive every process that ran it), until the
        # next reload.
        c = Target(TARGET, policy=x, env=env, exit_line=None)
        with c:
            pc = str(c.read()["pid"])
            expect(c, "X4", False, "a member started after the reload")
            expect(c, "Y4", True, "a member started after the reload")
            r = sockshim("reload", pa, y, env=env, code=None)
            if r.returncode != 0 or f"domain member {pc}: reloaded" not in r.stdout:
                fail(f"the second reload: {r.returncode} {r.stdout!r} {r.stderr!r}")
            expect(c, "Y5", False, "the later member after the second reload")
        note("ok: a later member runs its own file until the next reload")


if __name__ == "__main__":
    main()
