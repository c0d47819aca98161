"""Stream-verdict redirects into socketpair() ends (sockmap_listen's
test_unix_redir, KERNEL-SEMANTICS.md §4.2: sk_skb ingress any -> unix stream
and dgram; egress any -> any). socketpair_target.py runs under the shim with
socketpair_redirect.json and checks each arrival with a blocked recv, poll,
select and recv. Only under the shim: without it nothing redirects."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
policy = os.path.join(HERE, "socketpair_redirect.json")
try:
    proc = subprocess.run([harness.PYTHON, os.path.join(HERE, "socketpair_target.py")],
                          env=harness.environment("shim", SOCKSHIM_POLICY=policy),
                          capture_output=True, timeout=60)
except subprocess.TimeoutExpired:
    harness.fail("socketpair_target.py did not finish within 60 s")
harness.check_loaded("shim", proc.stderr.decode(errors="replace"), "socketpair_target.py")
out = proc.stdout.decode(errors="replace")
print(out, end="")
if proc.returncode != 0 or not out.endswith("ok\n"):
    harness.fail(f"socketpair_target.py exited {proc.returncode}\n"
                 f"stderr: {proc.stderr.decode(errors='replace')[-2000:]}")
print("PASS")
