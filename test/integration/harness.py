"""What every integration test shares: running a real program with and without
libsockshim.so, free loopback ports, bounded waits, failing loudly, and a
target process under `sockshim run` with the CLI and its control socket.

meson passes the built library and CLI as SOCKSHIM_LIBRARY and SOCKSHIM_BIN.
Each test runs its scenario twice, without the shim and with it, and compares
what a user would compare: bytes, hashes, exit statuses, printed results.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

LIBRARY = os.environ["SOCKSHIM_LIBRARY"]
SOCKSHIM = os.environ.get("SOCKSHIM_BIN", "")
PYTHON = sys.executable
MODES = ("plain", "shim")
SANITIZER_RUNTIMES = ("libasan.", "libtsan.", "libubsan.", "liblsan.", "libhwasan.", "libclang_rt.")


def sanitizer_runtimes(library):
    """The sanitizer runtimes a sanitized build of library links, by the names
    it asks the loader for: they must be loaded before it (ASan refuses to start
    otherwise), so they come first in LD_PRELOAD, as `sockshim run` puts them."""
    out = subprocess.run(["ldd", library], capture_output=True, text=True, timeout=30).stdout
    names = [line.split()[0] for line in out.splitlines() if "=>" in line]
    return [name for name in names if name.startswith(SANITIZER_RUNTIMES)]


RUNTIMES = sanitizer_runtimes(LIBRARY)
PRELOAD = ":".join(RUNTIMES + [LIBRARY])


def host_options(env):
    """env for a program run under a sanitized shim: no leak checks. What the
    host (python3, socat, curl...) leaves allocated at exit is not the shim's;
    the shim's own leaks are checked by the unit and conformance suites, which
    link it. A plain build changes nothing."""
    if RUNTIMES:
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS"), "detect_leaks=0"]))
    return env


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def note(message):
    print(message, flush=True)


def environment(mode, **extra):
    """The environment of a child process: with the shim preloaded (and logging
    at info, so the test can see it was loaded) or with no trace of it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKSHIM_")}
    env.pop("LD_PRELOAD", None)
    if mode == "shim":
        env["LD_PRELOAD"] = PRELOAD
        env["SOCKSHIM_LOG"] = "info"
        host_options(env)
    env.update(extra)
    return env


def wrap(mode, argv, via_cli=False):
    """argv as started in mode; via_cli runs it through `sockshim run --`."""
    if mode == "shim" and via_cli:
        return [SOCKSHIM, "run", "--"] + list(argv)
    return list(argv)


def check_loaded(mode, stderr_text, what):
    """Under the shim, the library's own log line proves it was really loaded."""
    loaded = "info: loaded" in stderr_text
    if mode == "shim" and not loaded:
        fail(f"{what}: libsockshim.so did not load (stderr: {stderr_text[-500:]!r})")
    if mode == "plain" and loaded:
        fail(f"{what}: the shim loaded in the run without it")


def run(mode, argv, timeout, via_cli=False, check=True, **kwargs):
    """Runs argv to completion in mode; returns the CompletedProcess."""
    try:
        proc = subprocess.run(wrap(mode, argv, via_cli), env=environment(mode),
                              capture_output=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        fail(f"{mode}: {argv[0]} did not finish within {timeout} s")
    stderr = proc.stderr.decode(errors="replace")
    check_loaded(mode, stderr, argv[0])
    if check and proc.returncode != 0:
        fail(f"{mode}: {' '.join(argv)} exited {proc.returncode}\n"
             f"stdout: {proc.stdout.decode(errors='replace')[-2000:]}\nstderr: {stderr[-2000:]}")
    return proc


class Server:
    """A background process (a server) in mode, stopped and checked on exit."""

    def __init__(self, mode, argv, via_cli=False, **kwargs):
        self.mode, self.argv = mode, argv
        self.proc = subprocess.Popen(wrap(mode, argv, via_cli), env=environment(mode),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     **kwargs)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        if exc[0] is None:
            check_loaded(self.mode, err.decode(errors="replace"), self.argv[0])
        return False


def free_port():
    """A TCP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, server, timeout=15):
    """Waits until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            fail(f"{server.argv[0]} exited early with {server.proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    fail(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


def syscall_of(pid, tid):
    """The number of the system call thread tid of pid sleeps in, or None."""
    try:
        with open(f"/proc/{pid}/task/{tid}/syscall") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def wait_for(what, condition, limit=20):
    """condition()'s first true value, polled every 20 ms; fails after limit s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    fail(f"{what}: not within {limit} s")


def listening(port):
    """Whether a socket listens on 127.0.0.1:port (from /proc, without connecting)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        return any(line.split()[1] == want and line.split()[3] == "0A"
                   for line in list(f)[1:])


FORWARDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "policy",
                         "examples", "forwarder.json")


def forwarder_policy(directory, listen_port, upstream_port):
    """policy/examples/forwarder.json with its example ports (8080 in, 9090
    upstream) replaced, written into directory; returns its path."""
    with open(FORWARDER) as f:
        policy = json.load(f)
    for rule in policy["programs"]["insert"]["rules"]:
        cond = rule["if"]
        if "local_port" in cond:
            cond["local_port"] = listen_port
        if "remote_port" in cond:
            cond["remote_port"] = upstream_port
    policy["programs"]["forward"]["rules"][0]["if"]["local_port"] = listen_port
    path = os.path.join(directory, "forwarder.json")
    with open(path, "w") as f:
        json.dump(policy, f)
    return path


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def same_in_both(results, what):
    """results maps mode -> value; the value must not depend on the shim."""
    if results["plain"] != results["shim"]:
        fail(f"{what} differs with the shim:\n  plain: {results['plain']!r}\n"
             f"  shim:  {results['shim']!r}")
    note(f"ok: {what} identical with and without the shim")


def sockshim(*args, env=None, code=0, timeout=30):
    """Runs the sockshim CLI (text output) and returns the CompletedProcess;
    fails unless it exits with code (None: any code)."""
    proc = subprocess.run([SOCKSHIM, *args], env=env, capture_output=True, text=True,
                          timeout=timeout)
    if code is not None and proc.returncode != code:
        fail(f"sockshim {' '.join(map(str, args))}: exit {proc.returncode}, expected {code}: "
             f"{proc.stdout}{proc.stderr}")
    return proc


def dump(pid, *sections, env=None):
    """`sockshim dump PID [SECTIONS] --json`: that process's part of the answer."""
    return json.loads(sockshim("dump", str(pid), *sections, "--json", env=env).stdout)[
        "processes"][0]


def control_request(path, payload, timeout=10):
    """Sends raw bytes to a control socket; returns the answer line parsed, or
    None when the server closed without answering."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    return json.loads(data) if data else None


def control_answer(path, payload, timeout=10):
    """control_request, or None while nothing listens at path yet: for a wait
    on a control socket being (re-)created, which exists before it listens."""
    try:
        return control_request(path, payload, timeout)
    except (FileNotFoundError, ConnectionRefusedError):
        return None


def request_line(name):
    """A control request line for a command without arguments."""
    return json.dumps({"version": 1, "command": name}).encode() + b"\n"


def cli_environment(runtime, **extra):
    """The environment of `sockshim run` and of the CLI: this one without
    LD_PRELOAD, with SOCKSHIM_RUNTIME_DIR=runtime and extra."""
    env = host_options(dict(os.environ, SOCKSHIM_RUNTIME_DIR=runtime, **extra))
    env.pop("LD_PRELOAD", None)
    return env


class Target:
    """A Python script run through `sockshim run` [-p policy], in its own
    runtime directory (its control socket is RUNTIME/PID.sock, once it has
    one). Its stdin and stdout are a line protocol of commands and JSON
    answers; at the end it is sent exit_line (if any), its stdin is closed,
    and it is waited for, or killed."""

    def __init__(self, script, *args, policy=None, env=None, stdin=True, exit_line="exit"):
        if env is None:
            env = cli_environment(tempfile.mkdtemp(prefix="sockshim-target-"))
        self.env, self.runtime = env, env["SOCKSHIM_RUNTIME_DIR"]
        policy_args = ["-p", policy] if policy else []
        self.proc = subprocess.Popen(
            [SOCKSHIM, "run", *policy_args, "--", PYTHON, script, *map(str, args)], env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
            text=True)
        self.pid, self.exit_line = self.proc.pid, exit_line

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.finish()
        return False

    def finish(self, timeout=30):
        """Sends exit_line and closes the target's stdin (terminates it if
        its stdin is no pipe); returns the exit status; kills the target if it
        has not exited within timeout s."""
        if not self.proc.stdin:
            self.proc.terminate()  # nothing else tells it to go
        else:
            try:
                if self.exit_line:
                    self.proc.stdin.write(self.exit_line + "\n")
                self.proc.stdin.close()
            except (OSError, ValueError):  # it exited, or its stdin was closed
                pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            fail(f"the target did not exit within {timeout} s")

    def line(self):
        """The target's next line of output; fails if it exited instead."""
        line = self.proc.stdout.readline()
        if not line:
            fail(f"the target exited {self.proc.wait()} instead of answering")
        return line

    def read(self):
        """The target's next line of output, as JSON."""
        return json.loads(self.line())

    def tell(self, cmd):
        """Writes a command line and returns the answer line, stripped."""
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.line().strip()

    def ask(self, cmd):
        """Writes a command line and returns the answer, as JSON."""
        return json.loads(self.tell(cmd))

    def control_path(self, pid=None):
        """The control socket of pid (by default the target's own)."""
        return os.path.join(self.runtime, f"{pid or self.pid}.sock")

    def request(self, payload, pid=None, timeout=10):
        """control_request to the target's control socket."""
        return control_request(self.control_path(pid), payload, timeout)

    def sockshim(self, *args, code=0):
        """The CLI in the target's runtime directory."""
        return sockshim(*args, env=self.env, code=code)
