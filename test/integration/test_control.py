"""The control socket and `sockshim ps` / `sockshim dump` against a live process:
what they show matches what the process itself knows, only its owner gets in,
malformed or slow requests get an error and never block it, a close-all loop or
a fork does not break it, and the socket file goes when the process exits."""

import json
import os
import socket
import stat
import subprocess
import sys
import tempfile
import time

from harness import (SOCKSHIM, Target, cli_environment, control_answer, control_request, fail, note,
                     request_line, sockshim, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))
TARGET = os.path.join(HERE, "control_target.py")


def expect_error(path, payload, code, message_part):
    answer = control_request(path, payload)
    if not answer or answer.get("ok") is not False or answer["error"]["code"] != code \
            or message_part not in answer["error"]["message"]:
        fail(f"{payload[:60]!r}: expected error {code} ({message_part}), got {answer!r}")
    note(f"ok: {payload[:40]!r}... -> {code}: {answer['error']['message']}")


def pass_through_stays_single_threaded(env):
    """Without a policy (and without SOCKSHIM_CONTROL=on) the shim starts no
    thread and serves no control socket: a second thread would cost glibc's
    cancellation handling on every system call."""
    quiet = {k: v for k, v in env.items() if k != "SOCKSHIM_CONTROL"}
    with Target(TARGET, env=quiet) as target:
        pid = target.read()["pid"]
        threads = len(os.listdir(f"/proc/{pid}/task"))
        listed = [p["pid"] for p in json.loads(sockshim("ps", "--json", env=quiet).stdout)]
        if threads != 1 or pid in listed:
            fail(f"pass-through process: {threads} threads, listed by ps: {pid in listed}")
        note("ok: with no policy the process keeps one thread and has no control socket")


def main():
    runtime = tempfile.mkdtemp(prefix="sockshim-control-")
    os.chmod(runtime, 0o700)
    env = cli_environment(runtime, SOCKSHIM_CONTROL="on")
    pass_through_stays_single_threaded(env)
    with Target(TARGET, env=env) as target:
        facts = target.read()
        pid = facts["pid"]
        path = target.control_path(pid)
        wait_for("the control socket", lambda: os.path.exists(path))

        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode != 0o600 or stat.S_IMODE(os.stat(runtime).st_mode) != 0o700:
            fail(f"socket mode {oct(mode)}, directory mode {oct(os.stat(runtime).st_mode)}")
        note("ok: directory 0700, socket 0600")

        # ps: the process, its command and its counts.
        ps = json.loads(sockshim("ps", "--json", env=env).stdout)
        mine = [p for p in ps if p["pid"] == pid]
        if len(mine) != 1 or mine[0]["sockets"] != 3 or mine[0]["fds"] != 4 \
                or "control_target.py" not in mine[0]["command"] or mine[0]["policy"] is not None:
            fail(f"ps --json: {ps!r}")
        text = sockshim("ps", env=env).stdout.splitlines()
        if not text[0].split() == ["PID", "COMMAND", "POLICY", "SOCKETS", "PSOCKS", "UPTIME"] \
                or not any(line.split()[0] == str(pid) for line in text[1:]):
            fail(f"ps table: {text!r}")
        note("ok: ps lists the process with 3 sockets on 4 fds")

        # dump: every socket once, with its fds, the kernel's cookie and its state.
        dump = json.loads(sockshim("dump", str(pid), "--json", env=env).stdout)["processes"][0]
        by_cookie = {s["cookie"]: s for s in dump["sockets"]}
        port = facts["port"]
        expected = {
            facts["listener"][1]: ([facts["listener"][0]], "LISTEN", f"127.0.0.1:{port}", ""),
            facts["client"][1]: ([facts["client"][0]], "ESTABLISHED", None, f"127.0.0.1:{port}"),
            facts["server"][1]: (facts["server"][0], "ESTABLISHED", f"127.0.0.1:{port}", None),
        }
        if set(by_cookie) != set(expected):
            fail(f"dump cookies {sorted(by_cookie)} != SO_COOKIE values {sorted(expected)}")
        for c, (fds, state, local, remote) in expected.items():
            s = by_cookie[c]
            if sorted(s["fds"]) != fds or s["state"] != state or s["type"] != "SOCK_STREAM" \
                    or s["family"] != "AF_INET" or s["psock"] is not False \
                    or (local is not None and s["local"] != local) \
                    or (remote is not None and s["remote"] != remote):
                fail(f"dump of cookie {c}: {s!r}, expected fds {fds} {state} {local} {remote}")
        note("ok: dump shows each socket once, with its fds, SO_COOKIE, state and addresses")
        table = sockshim("dump", str(pid), "sockets", env=env).stdout
        if f"== pid {pid}:" not in table or "COOKIE" not in table or \
                f"{facts['server'][0][0]},{facts['server'][0][1]}" not in table:
            fail(f"dump table:\n{table}")

        # Bad requests: an error that names what is wrong; the process is undisturbed.
        expect_error(path, b"not json\n", "EBADMSG", "not valid JSON")
        expect_error(path, b"[1,2]\n", "EBADMSG", "must be a JSON object")
        expect_error(path, b'{"version":2,"command":"info"}\n', "EPROTONOSUPPORT", "/version")
        expect_error(path, b'{"version":1,"command":"frobnicate"}\n', "EOPNOTSUPP", "frobnicate")
        expect_error(path, b'{"version":1,"command":"dump","args":{"sections":["x"]}}\n',
                     "EINVAL", "/args/sections")
        expect_error(path, b"x" * 70000, "EMSGSIZE", "65536")
        # The CLI names a bad section itself, once, as a usage error.
        bad = sockshim("dump", str(pid), "nonsense", env=env, code=None)
        if bad.returncode != 2 or not bad.stderr.startswith(
                "sockshim dump: 'nonsense' is not a process id or a section "
                "(maps|sockets|storage|stats)\n"):
            fail(f"dump with a bad section: {bad.returncode} {bad.stderr!r}")
        missing = sockshim("dump", "999999", env=env, code=None)
        if missing.returncode != 1 or "no sockshim control socket for pid 999999" not in missing.stderr:
            fail(f"dump of a pid without shim: {missing.returncode} {missing.stderr!r}")

        # A slow client is cut off, and does not delay anyone else meanwhile.
        slow = socket.socket(socket.AF_UNIX)
        slow.connect(path)
        slow.sendall(b'{"version":1,')
        start = time.monotonic()
        if control_request(path, request_line("info"), timeout=2)["result"]["pid"] != pid:
            fail("info while a slow client is connected")
        note(f"ok: answered in {time.monotonic() - start:.3f} s while a slow client held a connection")
        slow.settimeout(10)
        if slow.recv(100) != b"" or time.monotonic() - start > 8:
            fail("the slow client was not cut off within the deadline")
        slow.close()
        note("ok: the slow client was cut off")

        # Another user gets nothing: not through the 0700 directory, and not even
        # when the permissions are opened up (SO_PEERCRED).
        probe = ("import socket,sys\n"
                 "s=socket.socket(socket.AF_UNIX); s.settimeout(5)\n"
                 "try:\n s.connect(sys.argv[1])\nexcept OSError as e:\n print('refused', e.errno); sys.exit()\n"
                 "try:\n s.sendall(b'{\"version\":1,\"command\":\"info\"}\\n')\n"
                 " print('answer', repr(s.recv(1000)))\n"
                 "except ConnectionError:\n print(\"answer b''\")\n")
        def as_nobody():
            return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                   "/usr/bin/python3", "-c", probe, path],
                                  capture_output=True, text=True, timeout=20).stdout.strip()
        if os.geteuid() == 0:
            out = as_nobody()
            if not out.startswith("refused 13"):
                fail(f"nobody through the 0700 directory: {out!r}")
            os.chmod(runtime, 0o755)
            os.chmod(path, 0o666)
            out = as_nobody()
            os.chmod(runtime, 0o700)
            os.chmod(path, 0o600)
            if out != "answer b''":
                fail(f"nobody with open permissions got: {out!r}")
            note("ok: another user is refused by the directory and, failing that, by SO_PEERCRED")
            for command in (["dump", str(pid)], ["map", "lookup", str(pid), "m", "0"],
                            ["reload", str(pid)]):
                r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                    SOCKSHIM, *command], env=env,
                                   capture_output=True, text=True, timeout=20)
                if r.returncode == 0 or "Permission denied" not in r.stderr:
                    fail(f"nobody's {command[0]}: {r.returncode} {r.stdout!r} {r.stderr!r}")
            try:
                subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                "cat", path], capture_output=True, timeout=20, check=True)
                fail("nobody could read the socket file")
            except subprocess.CalledProcessError:
                pass
            note("ok: nobody is refused by dump, map and reload, and cannot read the socket file")
        else:
            note("skip: the other-user checks need root (setpriv)")

        # A close-all loop takes the shim's fds too; it re-creates its socket.
        if target.tell("closeall") != "closed":
            fail("closeall")
        wait_for("the re-created control socket",
                 lambda: (control_answer(path, request_line("info")) or {}).get("ok"))
        note("ok: after the program closed every fd, the control socket answers again")

        # A fork child that makes a socket serves its own control socket.
        child = target.ask("fork")["child"]
        child_path = target.control_path(child)
        info = wait_for("the fork child's control socket",
                        lambda: control_answer(child_path, request_line("info")))["result"]
        parent = control_request(path, request_line("info"))["result"]
        if info["pid"] != child or parent["pid"] != pid:
            fail(f"fork child info {info!r}")
        note("ok: the fork child answers on its own socket, the parent on its own")

        if target.finish() != 0:
            fail(f"the target exited {target.proc.returncode}")
        wait_for("the socket file to be removed at exit", lambda: not os.path.exists(path))
        note("ok: the socket file is removed when the process exits")
        # The child left with _exit(), which runs no clean-up: ps removes what it left.
        if not os.path.exists(child_path):
            fail("the child's socket vanished although _exit() runs no clean-up")
        sockshim("ps", env=env)
        if os.path.exists(child_path):
            fail("ps did not remove the socket of a process that no longer exists")
        note("ok: ps removes the socket a dead process left behind")
    print("PASS control", flush=True)


if __name__ == "__main__":
    main()
