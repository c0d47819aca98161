"""A JSON policy naming clang-built programs ("object", "program"):
bpf_object_target.py runs under `sockshim run` with bpf_object_json.json
(rules only) and with policies taking the same programs from
bpf_object_progs.bpf.o (all three, and mixed with a rule program), written
next to a copy of the object so that the relative path resolves against the
policy's directory. Every send's result and every reader's bytes must be the
same, and what the rules define. Then `sockshim check` on policies naming a
missing object, a missing program and a program of the wrong type, and the
shim refusing such a policy at start-up. argv: the object file (none: skip)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import PYTHON, SOCKSHIM, fail, host_options, note  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
if len(sys.argv) < 2 or not sys.argv[1]:
    print("SKIP: libbpf or clang missing")
    sys.exit(77)
OBJ = sys.argv[1]
JSON_POLICY = os.path.join(HERE, "bpf_object_json.json")
EXPECTED = {
    # The drop sticks, as in the kernel: the third send fails too.
    "sends": [4, "errno 13", "errno 13"],
    "a_peer": b"Pone".hex(),
    "r": b"\x05hello\x05world".hex(),
}


def env():
    return host_options({k: v for k, v in os.environ.items()
                         if not k.startswith("SOCKSHIM_") and k != "LD_PRELOAD"})


def run_target(policy):
    r = subprocess.run([SOCKSHIM, "run", "-p", policy, "--", PYTHON,
                        os.path.join(HERE, "bpf_object_target.py")],
                       env=env(), capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fail(f"{policy}: exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr[-3000:]}")
    return json.loads(r.stdout)


def with_objects(directory, name, programs):
    """bpf_object_json.json with the named programs taken from the object."""
    with open(JSON_POLICY) as f:
        policy = json.load(f)
    for prog, type_ in programs.items():
        policy["programs"][prog] = {"type": type_, "object": "bpf_object_progs.bpf.o",
                                    "program": prog}
    path = os.path.join(directory, name)
    with open(path, "w") as f:
        json.dump(policy, f, indent=1)
    return path


def check(policy):
    return subprocess.run([SOCKSHIM, "check", policy], env=env(), capture_output=True,
                          text=True, timeout=30)


def main():
    d = tempfile.mkdtemp(prefix="sockshim-bpf-object-")
    try:
        shutil.copy(OBJ, os.path.join(d, "bpf_object_progs.bpf.o"))
        all_objects = with_objects(d, "objects.json", {
            "route": "sk_msg", "frames": "sk_skb/stream_parser",
            "verdict": "sk_skb/stream_verdict"})
        mixed = with_objects(d, "mixed.json", {"route": "sk_msg",
                                                "frames": "sk_skb/stream_parser"})
        reference = run_target(JSON_POLICY)
        if reference != EXPECTED:
            fail(f"the rule policy gave {reference}, expected {EXPECTED}")
        note(f"ok: rules: {reference}")
        for name, policy in (("objects", all_objects), ("mixed", mixed)):
            got = run_target(policy)
            if got != reference:
                fail(f"{name}: {got}\n  rules gave {reference}")
            note(f"ok: {name}: the same sends and bytes as the rules")

        r = check(all_objects)
        if r.returncode != 0 or "ok: 2 maps, 3 programs, 3 attachments" not in r.stdout:
            fail(f"check of a valid object policy: exit {r.returncode}: {r.stdout}{r.stderr}")
        note(f"ok: check: {r.stdout.strip()}")

        cases = [
            ("missing object", {"route": {"type": "sk_msg", "object": "nothere.bpf.o",
                                          "program": "route"}},
             ["/programs/route/object", "cannot open BPF object",
              os.path.join(d, "nothere.bpf.o"), "No such file or directory"]),
            ("missing program", {"route": {"type": "sk_msg", "object": "bpf_object_progs.bpf.o",
                                           "program": "nope"}},
             ["/programs/route/program", 'no program "nope" in BPF object',
              "bpf_object_progs.bpf.o", '"route", "frames", "verdict", "ops"']),
            ("wrong type", {"frames": {"type": "sk_skb/stream_parser",
                                       "object": "bpf_object_progs.bpf.o", "program": "route"}},
             ["/programs/frames/program", 'program "route" in BPF object',
              'is in section "sk_msg", which is not a sk_skb/stream_parser program']),
        ]
        for name, programs, words in cases:
            with open(JSON_POLICY) as f:
                policy = json.load(f)
            policy["programs"].update(programs)
            path = os.path.join(d, name.replace(" ", "_") + ".json")
            with open(path, "w") as f:
                json.dump(policy, f, indent=1)
            r = check(path)
            if r.returncode != 1 or not all(w in r.stderr for w in words) or \
                    not r.stderr.startswith(path + ":"):
                fail(f"check, {name}: exit {r.returncode}, stderr {r.stderr!r}, expected {words}")
            note(f"ok: check, {name}: {r.stderr.splitlines()[0]}")
            # The shim refuses it at start-up with the same message.
            s = subprocess.run([SOCKSHIM, "run", "-p", path, "--", "/bin/true"], env=env(),
                               capture_output=True, text=True, timeout=30)
            if s.returncode != 78 or words[1] not in s.stderr:
                fail(f"run, {name}: exit {s.returncode}, stderr {s.stderr[-1500:]!r}")
            note(f"ok: run, {name}: refused at start-up (78)")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    print("PASS bpf object programs", flush=True)


if __name__ == "__main__":
    main()
