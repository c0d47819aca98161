"""`sockshim run` as a user meets it: exit statuses and signals are the
command's own, LD_PRELOAD keeps what was there, SOCKSHIM_POLICY is absolute,
the documented errors and warnings appear, --help and --version answer; and
`meson install` puts the library, the CLI, the header and the .pc file in place."""

import os
import re
import shutil
import signal
import subprocess
import tempfile

from harness import LIBRARY, PRELOAD, PYTHON, RUNTIMES, SOCKSHIM, fail, host_options, note


def run(*args, env=None, cwd=None):
    return subprocess.run([SOCKSHIM, *args], capture_output=True, text=True, timeout=30,
                          env=env, cwd=cwd)


def expect(proc, code, stderr_part="", stdout_part=""):
    if proc.returncode != code or stderr_part not in proc.stderr or stdout_part not in proc.stdout:
        fail(f"{proc.args}: exit {proc.returncode} (expected {code}), stdout {proc.stdout!r}, "
             f"stderr {proc.stderr!r} (expected {stderr_part!r} / {stdout_part!r})")


def unreadable_policy(work, env):
    """A policy the user cannot read: run refuses it (125) before CMD starts,
    rather than CMD stopping with the library's 78. As root, tried as nobody."""
    path = os.path.join(work, "secret.json")
    with open(path, "w") as f:
        f.write('{"version": 1}\n')
    os.chmod(path, 0)
    argv = [SOCKSHIM, "run", "-p", path, "--", "true"]
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            note("skipped: unreadable policy (root, and no setpriv to drop privileges)")
            return
        os.chmod(work, 0o755)
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + argv
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=env)
    expect(proc, 125, f"sockshim run: cannot read policy {path}: Permission denied")
    note("ok: an unreadable policy: run exits 125 with the reason")


def main():
    work = tempfile.mkdtemp(prefix="sockshim-run-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKSHIM_") or k == "SOCKSHIM_LIBRARY"}

    # The command's exit status and signal are its own.
    expect(run("run", "--", "sh", "-c", "exit 7", env=env), 7)
    killed = run("run", "--", "sh", "-c", "kill -TERM $$", env=env)
    if killed.returncode != -signal.SIGTERM:
        fail(f"a command killed by SIGTERM: {killed.returncode}")
    note("ok: exit status 7 and SIGTERM come through unchanged")

    # LD_PRELOAD: ours first (after the sanitizer runtimes a sanitized build
    # links), the previous one kept; the policy path made absolute.
    with open(os.path.join(work, "p.json"), "w") as f:
        f.write('{"version": 1}\n')
    probe = run("run", "-p", "p.json", "--", "sh", "-c", 'echo "$LD_PRELOAD|$SOCKSHIM_POLICY"',
                env=dict(env, LD_PRELOAD="libfoo.so"), cwd=work)
    preload, policy = probe.stdout.strip().split("|")
    if preload != ":".join(RUNTIMES + [os.path.realpath(LIBRARY), "libfoo.so"]) or policy != os.path.join(os.path.realpath(work), "p.json"):
        fail(f"LD_PRELOAD={preload!r} SOCKSHIM_POLICY={policy!r}")
    note("ok: LD_PRELOAD keeps what was there; SOCKSHIM_POLICY is absolute")

    # Errors, each named, with the documented statuses.
    expect(run("run", env=env), 2, "sockshim run: no command given")
    expect(run("run", "--frobnicate", "--", "true", env=env), 2, "sockshim run: unknown option '--frobnicate'")
    expect(run("run", "-p", env=env), 2, "sockshim run: -p needs a policy file")
    expect(run("run", "--", "no-such-command-xyz", env=env), 127,
           "sockshim run: no-such-command-xyz: command not found")
    noexec = os.path.join(work, "noexec")
    with open(noexec, "w") as f:
        f.write("#!/bin/sh\n")
    expect(run("run", "--", noexec, env=env), 126, f"sockshim run: cannot execute {noexec}: Permission denied")
    expect(run("run", "-p", "/nonexistent.json", "--", "true", env=env), 125,
           "sockshim run: cannot read policy /nonexistent.json: No such file or directory")
    # A policy that cannot be read is run's own failure (125), with the message
    # the library, check, test-run and reload give for it.
    expect(run("run", "-p", work, "--", "true", env=env), 125,
           f"sockshim run: cannot read policy {work}: Is a directory")
    unreadable_policy(work, env)
    expect(run("run", "--", "true", env=dict(env, SOCKSHIM_LIBRARY="/nonexistent/lib.so")), 125,
           "sockshim run: cannot find libsockshim.so")
    expect(run("frobnicate", env=env), 2, "sockshim: unknown command 'frobnicate' (see sockshim --help)")
    note("ok: usage errors exit 2, a missing command 127, a non-executable one 126, run's own failures 125")

    # The library says the same of a directory, and stops the program (78).
    lib = subprocess.run([PYTHON, "-c", "import socket; socket.socket()"], capture_output=True,
                         text=True, timeout=30,
                         env=host_options(dict(env, LD_PRELOAD=PRELOAD, SOCKSHIM_POLICY=work)))
    expect(lib, 78, f"sockshim: cannot read policy {work}: Is a directory\n")
    # Log lines name their level as SOCKSHIM_LOG does: warn, not warning.
    lib = subprocess.run([PYTHON, "-c", "import socket; socket.socket()"], capture_output=True,
                         text=True, timeout=30,
                         env=host_options(dict(env, LD_PRELOAD=PRELOAD, SOCKSHIM_LOG="loud")))
    expect(lib, 0, "] warn: SOCKSHIM_LOG=loud is not a level")
    if not re.match(r"sockshim\[\d+\] warn: ", lib.stderr):
        fail(f"a warning's log line: {lib.stderr!r}")
    note("ok: the library names a directory as run does; log lines say warn:")

    # A statically linked program and a Go program are run, with a warning.
    src = os.path.join(work, "hello.c")
    with open(src, "w") as f:
        f.write('#include <stdio.h>\nint main(void) { puts("hi"); return 0; }\n')
    static = os.path.join(work, "static-hello")
    subprocess.run(["gcc", "-static", "-o", static, src], check=True, timeout=60)
    expect(run("run", "--", static, env=env), 0,
           f"sockshim: warn: {static} is statically linked; the shim cannot see its socket calls",
           "hi")
    dynamic = os.path.join(work, "dynamic-hello")
    subprocess.run(["gcc", "-o", dynamic, src], check=True, timeout=60)
    quiet = run("run", "--", dynamic, env=env)
    expect(quiet, 0, "", "hi")
    if "warn" in quiet.stderr:
        fail(f"a dynamic program got a warning: {quiet.stderr!r}")
    # What marks a Go binary: its build-id note section.
    gofake = os.path.join(work, "go-hello")
    note_file = os.path.join(work, "note")
    with open(note_file, "wb") as f:
        f.write(b"\0" * 16)
    subprocess.run(["objcopy", "--add-section", f".note.go.buildid={note_file}", dynamic, gofake],
                   check=True, timeout=60)
    expect(run("run", "--", gofake, env=env), 0,
           f"sockshim: warn: {gofake} is a Go program; Go makes raw system calls", "hi")
    note("ok: static and Go programs run, with the documented warnings; a dynamic one gets none")

    expect(run("--help", env=env), 0, "", "usage: sockshim COMMAND")
    expect(run("run", "--help", env=env), 0, "", "usage: sockshim run [-p POLICY]")
    version = run("--version", env=env)
    if version.returncode != 0 or not version.stdout.startswith("sockshim "):
        fail(f"--version: {version.stdout!r}")
    note(f"ok: --help, run --help, --version ({version.stdout.strip()})")

    # meson install: library, CLI, header, pkg-config file.
    build = os.path.dirname(os.path.dirname(os.path.realpath(SOCKSHIM)))
    dest = os.path.join(work, "dest")
    inst = subprocess.run(["meson", "install", "-C", build, "--destdir", dest, "--no-rebuild",
                           "--skip-subprojects"], capture_output=True, text=True, timeout=120)
    if inst.returncode != 0:
        fail(f"meson install: {inst.stdout[-1000:]} {inst.stderr[-1000:]}")
    found = {os.path.basename(os.path.join(r, n)) for r, _, names in os.walk(dest) for n in names}
    for want in ("libsockshim.so", "sockshim", "sockshim.h", "sockshim.pc"):
        if want not in found:
            fail(f"meson install did not install {want}: {sorted(found)}")
    note("ok: meson install puts libsockshim.so, sockshim, sockshim.h and sockshim.pc in place")
    shutil.rmtree(work, ignore_errors=True)
    print("PASS run cli", flush=True)


if __name__ == "__main__":
    main()
