"""sk_storage values in a domain: one value per socket for every process
holding it. A process passes a socket over SCM_RIGHTS to another process under
the same policy; a value set through one is read through the other, in both
directions; it stays when the first closes its fd; and a process under
another policy (another domain) keeps its own values."""

import os
import tempfile

from harness import Target, cli_environment, fail, note, sockshim

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "domain_storage_peer.py")
POLICY = os.path.join(HERE, "maps_policy.json")


def main():
    env = cli_environment(tempfile.mkdtemp(prefix="sockshim-domain-storage-"))
    path = os.path.join(env["SOCKSHIM_RUNTIME_DIR"], "pass.sock")

    def value(pid, fd, code=0):
        r = sockshim("map", "lookup", str(pid), "quota", str(fd), env=env, code=code)
        return r.stdout.strip() if code == 0 else r.stderr.strip()

    def update(pid, fd, v):
        sockshim("map", "update", str(pid), "quota", str(fd), "--value", v, env=env)

    a = Target(PEER, "serve", path, policy=POLICY, env=env)
    b = Target(PEER, "take", path, policy=POLICY, env=env)
    with a, b:
        fa, fb = a.read(), b.read()
        update(fa["pid"], fa["fd"], "bytes=1234,limit=99")
        got = value(fb["pid"], fb["fd"])
        if got != "bytes=1234,limit=99":
            fail(f"the value set in {fa['pid']}, read in {fb['pid']}: {got!r}")
        update(fb["pid"], fb["fd"], "bytes=5,limit=6")
        got = value(fa["pid"], fa["fd"])
        if got != "bytes=5,limit=6":
            fail(f"the value set in {fb['pid']}, read in {fa['pid']}: {got!r}")
        note("ok: a value written through one process is read through the other")

        a.tell("close")
        got = value(fb["pid"], fb["fd"])
        if got != "bytes=5,limit=6":
            fail(f"after the first holder closed: {got!r}")
        note("ok: the value stays while another process holds the socket")

    # Another domain (SOCKSHIM_DOMAIN) does not see this domain's values.
    path2 = path + "2"
    other = dict(env, SOCKSHIM_DOMAIN="storage-other")
    a = Target(PEER, "serve", path2, policy=POLICY, env=env)
    b = Target(PEER, "take", path2, policy=POLICY, env=other)
    with a, b:
        fa, fb = a.read(), b.read()
        update(fa["pid"], fa["fd"], "bytes=7,limit=8")
        got = value(fb["pid"], fb["fd"], code=1)
        if "ENOENT" not in got:
            fail(f"a process of another domain read {got!r}")
        note("ok: a process of another domain keeps its own values")


if __name__ == "__main__":
    main()
