"""The domain's maps in `sockshim dump`: two processes under one sockops
policy (both ends of a local TCP connection enter a sockhash) each see both
sockets with the process and fd holding it, from either side; a fork child
holds its parent's socket too; a socket stays while any holder has it; and a
`kill -9`'d holder's sockets leave the maps within 1 s."""

import os
import shutil
import signal
import tempfile
import time

from harness import Target, cli_environment, dump, fail, note, sockshim, wait_for

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "domain_maps_peer.py")
POLICY = os.path.join(HERE, "..", "..", "policy", "examples", "peer_acceleration.json")


def entries(pid, env):
    """{local port: sorted [(pid, fd)]} of by_tuple in the domain maps pid's dump shows."""
    d = dump(pid, "maps", env=env).get("domain_maps")
    if not d:
        fail(f"pid {pid}: no domain maps in its dump")
    out = {}
    for m in d["maps"]:
        if m["name"] != "by_tuple":
            continue
        for e in m["entries"]:
            out[e["key"]["local_port"]] = sorted((h["pid"], h["fd"]) for h in e["holders"])
    return out


def main():
    runtime = tempfile.mkdtemp(prefix="sockshim-domain-maps-")
    os.chmod(runtime, 0o700)
    policies = tempfile.mkdtemp(prefix="sockshim-domain-maps-policy-")
    policy = os.path.join(policies, "peer.json")
    shutil.copy(POLICY, policy)
    env = cli_environment(runtime)
    with Target(PEER, policy=policy, env=env) as a, Target(PEER, policy=policy, env=env) as b:
        pa, pb = a.read()["pid"], b.read()["pid"]
        port = a.ask("listen")["port"]
        client = b.ask(f"connect {port}")
        server = a.ask("accept")
        # Both ends are in: the client's socket on port client["port"], the server's on port.
        want = {port: [(pa, server["fd"])], client["port"]: [(pb, client["fd"])]}
        for viewer in (pa, pb):
            wait_for(f"both sockets in the domain's maps as pid {viewer} dumps them",
                     lambda: entries(viewer, env) == want, limit=10)
        note(f"ok: dump from {pa} and from {pb} shows both processes' sockets {want}")

        text = sockshim("dump", str(pb), "maps", env=env).stdout
        if f"domain maps (policy:{os.path.realpath(policy)})" not in text \
                or f"{pa}:{server['fd']}" not in text or f"{pb}:{client['fd']}" not in text:
            fail(f"dump text without the domain's maps and their holders:\n{text}")
        note("ok: dump's text names the domain and each entry's holders as PID:FD")

        child = a.ask("fork")["child"]
        want[port] = sorted([(pa, server["fd"]), (child, server["fd"])])
        wait_for("the fork child holding its parent's socket",
                 lambda: entries(pb, env) == want, limit=10)
        a.ask("close_accepted")
        want[port] = [(child, server["fd"])]
        wait_for("the parent's close leaving the child's hold",
                 lambda: entries(pb, env) == want, limit=10)
        note(f"ok: fork child {child} holds the socket, and keeps it after its parent closes")

        os.kill(child, signal.SIGKILL)
        killed = time.monotonic()
        del want[port]
        wait_for("the killed child's socket gone", lambda: entries(pb, env) == want, limit=10)
        if time.monotonic() - killed > 1.0:
            fail(f"the killed holder's socket left after {time.monotonic() - killed:.2f} s")
        os.kill(pb, signal.SIGKILL)
        killed = time.monotonic()
        wait_for("the killed client's socket gone", lambda: entries(pa, env) == {}, limit=10)
        if time.monotonic() - killed > 1.0:
            fail(f"the killed holder's socket left after {time.monotonic() - killed:.2f} s")
        note("ok: kill -9'd holders' sockets leave the maps within 1 s")
        b.proc.wait()
    shutil.rmtree(runtime, ignore_errors=True)
    shutil.rmtree(policies, ignore_errors=True)
    note("PASS")


if __name__ == "__main__":
    main()
