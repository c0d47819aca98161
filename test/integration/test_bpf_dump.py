"""`sockshim dump` lists the maps a process made with bpf(), after the
policy's, marked as such: a SOCKHASH with its socket, a HASH with its count,
and a SOCKMAP with the bytecode programs bpf() attached to it.
(A process has a control socket only under a policy: the target has a small one.)"""

import json
import os

from harness import Target, fail, note

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    target = Target(os.path.join(HERE, "bpf_dump_target.py"),
                    policy=os.path.join(HERE, "bpf_dump_policy.json"))
    with target:
        facts = target.read()
        pid = str(facts["pid"])
        dump = json.loads(target.sockshim("dump", pid, "maps", "--json").stdout)
        names = [m["name"] for m in dump["processes"][0]["maps"]]
        if names != ["policy_map", "conns", "counts", "verdicts"]:
            fail(f"dump maps: {names}, expected the policy's map, then the bpf() maps")
        maps = {m["name"]: m for m in dump["processes"][0]["maps"]}
        conns, counts = maps.get("conns"), maps.get("counts")
        if not conns or not counts:
            fail(f"dump maps: {maps!r}")
        if (conns["source"], conns["type"], conns["count"], conns["max_entries"]) != \
                ("bpf", "sockhash", 1, 4):
            fail(f"conns: {conns!r}")
        entry = conns["entries"][0]
        if entry["cookie"] != facts["cookie"] or entry["key"] != "07000000":
            fail(f"conns entry: {entry!r}")
        if (counts["source"], counts["type"], counts["count"], counts["entries"]) != \
                ("bpf", "hash", 1, []):
            fail(f"counts: {counts!r}")
        verdicts = maps["verdicts"]
        if verdicts["programs"] != {"sk_msg": "pass_all", "skb_verdict": "skb_drop"}:
            fail(f"verdicts: {verdicts!r}")
        note("ok: dump maps --json lists the bpf() maps, the socket by cookie and key, "
             "the programs attached")
        text = target.sockshim("dump", pid, "maps").stdout
        if "conns  sockhash  max_entries 4  value_size 8  entries 1  programs -  (bpf() map)" \
                not in text:
            fail(f"dump maps text:\n{text}")
        if "programs sk_msg=pass_all,skb_verdict=skb_drop  (bpf() map)" not in text:
            fail(f"dump maps text:\n{text}")
        note("ok: the text dump marks them")


main()
