"""A replacement by another process is seen by a redirect. Two processes of
one domain: A's receive engine redirects what its socket at src[0] reads
into the socket at dst[0], A's own at first. Then B puts its socket at
dst[0]: the domain's map (the kernel's one map) now has B's there, so A's
next redirect must not go to A's old socket: A's entry is stale and goes,
the redirect finds no socket A holds and drops (docs/domains.md), and A's
old socket receives nothing more."""

import os
import shutil
import tempfile

from harness import Target, cli_environment, dump, fail, note, sockshim, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "replace_peer.py")
POLICY = os.path.join(HERE, "replace_policy.json")


def local_entries(pid, env, name):
    return [e["cookie"] for m in dump(pid, "maps", env=env)["maps"] if m["name"] == name
            for e in m["entries"]]


def domain_holders(pid, env, name):
    d = dump(pid, "maps", env=env)["domain_maps"]
    return [h["pid"] for m in d["maps"] if m["name"] == name for e in m["entries"]
            for h in e["holders"]]


def dropped(pid, env):
    return sum(p["stats"]["rx"]["dropped"] for p in dump(pid, "stats", env=env)["psocks"])


def main():
    runtime = tempfile.mkdtemp(prefix="sockshim-replace-")
    os.chmod(runtime, 0o700)
    env = cli_environment(runtime)
    with Target(PEER, policy=POLICY, env=env) as a, Target(PEER, policy=POLICY, env=env) as b:
        pa, pb = a.read()["pid"], b.read()["pid"]
        src, dst = a.ask("pair"), a.ask("pair")
        sockshim("map", "update", str(pa), "src", "0", str(src["server"]), env=env)
        sockshim("map", "update", str(pa), "dst", "0", str(dst["server"]), env=env)
        a.ask(f"send {src['client']} one")
        if (got := a.ask(f"recv {dst['server']} 3")["data"]) != "one":
            fail(f"A's own redirect delivered {got!r}, not 'one'")
        note("ok: A's redirect goes into A's socket at dst[0]")

        theirs = b.ask("pair")
        sockshim("map", "update", str(pb), "dst", "0", str(theirs["server"]), env=env)
        wait_for("B's socket at dst[0] in the domain",
                 lambda: domain_holders(pa, env, "dst") == [pb], limit=10)
        before = dropped(pa, env)
        a.ask(f"send {src['client']} two")
        wait_for("A's redirect to the replaced key dropped",
                 lambda: dropped(pa, env) >= before + 3, limit=10)
        if (got := a.ask(f"peek {dst['server']}")["data"]) != "":
            fail(f"A's old socket at dst[0] still received {got!r} after B replaced it")
        if local_entries(pa, env, "dst"):
            fail("A's stale entry at dst[0] is still in its map after the redirect checked it")
        if domain_holders(pa, env, "dst") != [pb]:
            fail("A's check changed the domain's entry, which is B's")
        note("ok: after B's replacement A's redirect skips A's old socket, whose stale "
             "entry leaves A's map; the domain keeps B's")
        b.finish()
        a.finish()
    shutil.rmtree(runtime, ignore_errors=True)
    note("PASS")


if __name__ == "__main__":
    main()
