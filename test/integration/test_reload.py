"""`sockshim reload` on a live process: a bad policy is refused with its errors
and the old one keeps deciding; a good one decides from the next message, and a
map that keeps its definition keeps its sockets."""

import errno
import json
import os

from harness import Target, fail, note

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    target = Target(os.path.join(HERE, "reload_target.py"),
                    policy=os.path.join(HERE, "reload_drop_x.json"), exit_line=None)
    bad = os.path.join(target.runtime, "bad.json")
    with open(bad, "w") as f:
        f.write('{"version": 1, "maps": {"socks": {"type": "sockhash"}}}\n')

    def expect(msg, delivered):
        r = target.ask(msg)
        ok = r == {"sent": len(msg), "got": msg} if delivered else r == {"error": errno.EACCES}
        if not ok:
            fail(f"{msg}: {r!r}, expected {'delivery' if delivered else 'EACCES'}")

    def reload(*args):
        return target.sockshim("reload", pid, *args, code=None)

    with target:
        pid = str(target.read()["pid"])
        expect("X1", False)
        expect("Y1", True)
        note("ok: the first policy drops messages starting with X")

        r = reload(bad)
        if r.returncode != 1 or "EINVAL: policy refused, the old one stays:" not in r.stderr \
                or '/maps/socks: missing required key "max_entries"' not in r.stderr \
                or '/maps/socks: missing required key "key"' not in r.stderr:
            fail(f"reload of a bad policy: {r.returncode} {r.stderr!r}")
        expect("X2", False)
        expect("Y2", True)
        note("ok: a bad policy is refused with every error; the old one still decides")

        r = reload(os.path.join(HERE, "reload_drop_y.json"))
        if r.returncode != 0 or "kept their sockets: socks" not in r.stdout:
            fail(f"reload: {r.returncode} {r.stdout!r} {r.stderr!r}")
        expect("X3", True)
        expect("Y3", False)
        note("ok: the new policy decides from the next message")

        dump = json.loads(target.sockshim("dump", pid, "maps", "--json", code=None).stdout)
        maps = {m["name"]: m for m in dump["processes"][0]["maps"]}
        if maps["socks"]["count"] != 2 or maps["extra"]["max_entries"] != 5 \
                or dump["processes"][0]["process"]["policy"] != os.path.join(HERE, "reload_drop_y.json"):
            fail(f"after reload: {dump!r}")
        note("ok: the kept sockhash kept both sockets; the changed sockmap was replaced")

        r = reload()
        if r.returncode != 0:
            fail(f"reload of the current file: {r.stderr!r}")
        expect("Y4", False)
        missing = reload("/nonexistent/policy.json")
        if missing.returncode != 1 or "cannot read policy /nonexistent/policy.json" not in missing.stderr:
            fail(f"reload of a missing file: {missing.stderr!r}")
        note("ok: reload without a file reads the current one again; a missing file is named")
    print("PASS reload", flush=True)


if __name__ == "__main__":
    main()
