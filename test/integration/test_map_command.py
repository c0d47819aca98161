"""`sockshim map` and the map sections of `sockshim dump` against a live process
whose policy's sockops inserted its sockets: what they print matches the
process's own sockets, and every error is the kernel's, by name."""

import json
import os

from harness import Target, fail, note

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    target = Target(os.path.join(HERE, "control_target.py"),
                    policy=os.path.join(HERE, "maps_policy.json"))
    runtime, sockshim = target.runtime, target.sockshim

    def error(expected, *args):
        err = sockshim("map", *args, code=1).stderr.strip()
        if err != f"sockshim map: {expected}":
            fail(f"map {' '.join(args)}: {err!r}, expected {expected!r}")
        note(f"ok: map {' '.join(args[:1])} ... -> {expected}")

    with target:
        facts = target.read()
        pid = str(facts["pid"])
        client_fd, client_cookie = facts["client"]
        server_fds, server_cookie = facts["server"]
        port = facts["port"]

        # The sockops program inserted both ends of the connection, keyed by 4-tuple.
        dump = json.loads(sockshim("dump", pid, "maps", "stats", "--json").stdout)["processes"][0]
        maps = {m["name"]: m for m in dump["maps"]}
        entries = {e["cookie"]: e for e in maps["by_tuple"]["entries"]}
        if set(entries) != {client_cookie, server_cookie} or maps["by_tuple"]["count"] != 2:
            fail(f"by_tuple entries {maps['by_tuple']!r}")
        server_key = entries[server_cookie]["key"]
        if server_key["local_port"] != port or server_key["local_ip4"] != "127.0.0.1" \
                or sorted(entries[server_cookie]["fds"]) != server_fds:
            fail(f"server entry {entries[server_cookie]!r}")
        if {p["cookie"] for p in dump["psocks"]} != {client_cookie, server_cookie}:
            fail(f"psocks {dump['psocks']!r}")
        note("ok: dump maps shows the sockops insertions with decoded keys, cookies and fds")

        # Lookup by the key dump printed gives the same socket.
        key = ",".join(f"{k}={v}" for k, v in server_key.items())
        found = json.loads(sockshim("map", "lookup", pid, "by_tuple", key, "--json").stdout)
        if found["cookie"] != server_cookie:
            fail(f"lookup {key}: {found!r}")
        note("ok: map lookup with the printed key finds the socket")

        # Updates with the kernel's flag semantics, then lookups.
        sockshim("map", "update", pid, "slots", "3", str(client_fd))
        error("EEXIST: key already present (BPF_NOEXIST)",
              "update", pid, "slots", "3", str(client_fd), "--flags", "BPF_NOEXIST")
        error("ENOENT: no such key (BPF_EXIST)",
              "update", pid, "slots", "4", str(client_fd), "--flags", "BPF_EXIST")
        error("E2BIG: index out of range (max_entries)", "update", pid, "slots", "8", str(client_fd))
        error("EBADF: not an open file descriptor in the process", "update", pid, "slots", "1", "999")
        error("ENOTSOCK: the fd is not a socket", "update", pid, "slots", "1", "0")
        out = sockshim("map", "lookup", pid, "slots", "3").stdout
        if not out.startswith(f"cookie {client_cookie}  fd {client_fd}  "):
            fail(f"lookup slots 3: {out!r}")
        error("ENOENT: no such key", "lookup", pid, "slots", "5")
        sockshim("map", "update", pid, "slots4", "0", str(client_fd))
        error("ENOSPC: value_size is 4: lookup cannot return the cookie", "lookup", pid, "slots4", "0")
        sockshim("map", "delete", pid, "slots", "3")
        error("EINVAL: empty slot or index out of range", "delete", pid, "slots", "3")
        error("ENOENT: no such key", "delete", pid, "by_tuple",
              "local_ip4=10.0.0.1,local_port=1,remote_ip4=10.0.0.2,remote_port=2")
        note("ok: update/lookup/delete give the kernel's errno for each case")

        # sk_storage: key is the fd; the value is decoded by its layout.
        sockshim("map", "update", pid, "quota", str(client_fd), "--value", "bytes=1234,limit=99")
        value = sockshim("map", "lookup", pid, "quota", str(client_fd)).stdout.strip()
        if value != "bytes=1234,limit=99":
            fail(f"quota value {value!r}")
        storage = json.loads(sockshim("dump", pid, "storage", "--json").stdout)["processes"][0]["storage"]
        values = storage[0]["values"]
        if storage[0]["map"] != "quota" or len(values) != 1 or values[0]["cookie"] != client_cookie \
                or values[0]["value"] != {"bytes": 1234, "limit": 99}:
            fail(f"dump storage {storage!r}")
        error("EEXIST: key already present (BPF_NOEXIST)", "update", pid, "quota", str(client_fd),
              "--value", "bytes=1", "--flags", "BPF_NOEXIST")
        note("ok: sk_storage values set, read back and dumped by layout")

        # Bad input is named.
        error('EBADF: no map named "nope" (maps: "by_tuple", "slots", "slots4", "quota")',
              "lookup", pid, "nope", "0")
        error('EINVAL: key: missing field "remote_port"', "lookup", pid, "by_tuple",
              "local_ip4=127.0.0.1,local_port=1,remote_ip4=127.0.0.1")
        error('EINVAL: key "x": expected an index', "lookup", pid, "slots", "x")
        usage = sockshim("map", "update", pid, "slots", "1", code=2).stderr
        if "expected lookup|update|delete PID MAP KEY FD" not in usage:
            fail(f"usage error: {usage!r}")
        # A PID or a section that is not one is named once, with status 2.
        usage = sockshim("map", "update", "notapid", "slots", "1", "4", code=2).stderr
        if usage != "sockshim map: PID must be a process id, not 'notapid'\n":
            fail(f"map update notapid: {usage!r}")
        for args in (["abc"], [pid, "abc"]):
            usage = sockshim("dump", *args, code=2).stderr
            if not usage.startswith("sockshim dump: 'abc' is not a process id or a section "
                                    "(maps|sockets|storage|stats)\n") or "EINVAL" in usage:
                fail(f"dump {' '.join(args)}: {usage!r}")
        # reload names a policy it cannot read as run, check and the library do.
        refused = sockshim("reload", pid, runtime, code=1).stderr
        if refused != f"sockshim reload: cannot read policy {runtime}: Is a directory\n":
            fail(f"reload of a directory: {refused!r}")
        note("ok: map notapid, dump abc and reload DIR say what is wrong")

        text = sockshim("dump", pid).stdout
        for needle in ("maps", "by_tuple  sockhash  max_entries 64", "storage", "psocks",
                       f"local_ip4=127.0.0.1,local_port={port}"):
            if needle not in text:
                fail(f"dump text lacks {needle!r}:\n{text}")
        note("ok: the text dump shows maps, storage and psocks")

        # Closing the socket takes it out of every map (the last fd goes).
        target.finish()
    print("PASS map command", flush=True)


if __name__ == "__main__":
    main()
