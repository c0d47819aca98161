"""Byte counters that add up: a process under the shim sends known byte counts
through PASS, DROP (and a sticky drop), egress and ingress redirects, push,
pop, cork, partial non-blocking sends and sendfile (copied and zero-copy), and
frames through the receive engine (stream parser and verdict: pass, drop,
egress and ingress redirect, a frame cut short);
`sockshim dump --json` taken while it pauses must show, per psock,
in + pushed - popped == passed + dropped + redirected + queued, and each
counter equal to what the readers got and the sender lost. Then the same
invariant on dumps taken during continuous traffic, and exact totals after."""

import json
import os
import time

from harness import Target, dump, fail, note, sockshim

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY = os.path.join(HERE, "counters_policy.json")
KEYS = ("in", "pushed", "popped", "passed", "dropped", "redirected", "queued")


def psocks(d):
    return {p["cookie"]: p for p in d["psocks"]}


def adds_up(counters, what):
    c = counters
    if c["in"] + c["pushed"] - c["popped"] != c["passed"] + c["dropped"] + c["redirected"] + c["queued"]:
        fail(f"{what}: in + pushed - popped != passed + dropped + redirected + queued: {c}")


def check_invariant(d, what):
    for p in d["psocks"]:
        st = p["stats"]
        if set(st) != {"tx", "rx", "total", "ingress_in", "queued"} or \
                any(set(st[k]) - {"runs"} != set(KEYS) for k in ("tx", "rx", "total")):
            fail(f"{what}: stats keys {json.dumps(st)}")
        for direction in ("tx", "rx", "total"):
            adds_up(st[direction], f"{what}, psock {p['cookie']} {direction}")
        for k in KEYS:
            if st["total"][k] != st["tx"][k] + st["rx"][k]:
                fail(f"{what}: total.{k} is not tx + rx: {st}")


def expect_tx(p, what, **want):
    tx = p["stats"]["tx"]
    for k, v in want.items():
        if tx[k] != v:
            fail(f"{what}: tx.{k} = {tx[k]}, expected {v}; tx = {tx}")


def fixed_phase(target, pid, env):
    r = target.ask("fixed")
    ck, sent, exp, got = r["cookies"], r["sent"], r["expect"], r["got"]
    for name in ("a", "b", "c", "s", "z"):
        if got[name] != exp[name]:
            fail(f"reader {name} got {got[name]} bytes, expected {exp[name]}")
    if exp["eacces"] != 2 or sent["n"] == 0:
        fail(f"traffic: {r}")
    d = dump(pid, env=env)
    check_invariant(d, "paused")
    ps = psocks(d)
    expect_tx(ps[ck["a"]], "a (mixed)", **{
        "in": sent["a"], "pushed": exp["pushed_a"], "popped": exp["popped_a"],
        "passed": got["a"], "dropped": exp["dropped_a"], "redirected": got["b"] + got["c"],
        "queued": 0})
    expect_tx(ps[ck["k"]], "k (corked)", **{"in": 4000, "queued": 4000, "passed": 0})
    expect_tx(ps[ck["n"]], "n (partial sends)", **{"in": sent["n"], "passed": sent["n"],
                                                     "dropped": 0, "queued": 0})
    expect_tx(ps[ck["s"]], "s (sticky drop)", **{"in": 1200, "passed": got["s"], "dropped": 900})
    expect_tx(ps[ck["z"]], "z (zero-copy sendfile)", **{"in": 300000, "passed": got["z"]})
    expect_tx(ps[ck["b"]], "b (egress target)", **{"in": 0, "redirected": 0})
    c = ps[ck["c"]]
    if c["stats"]["ingress_in"] != got["c"] or c["ingress_bytes"] != 0 or \
            c["stats"]["queued"] != c["stats"]["ingress_in"]:
        fail(f"c (ingress target): {c}, its reader got {got['c']}")
    note(f"ok: paused dump matches the traffic: a sent {sent['a']} B "
         f"(passed {got['a']}, dropped {exp['dropped_a']}, redirected {got['b'] + got['c']}), "
         f"k holds 4000 corked, n took {sent['n']} of its non-blocking sends, s dropped 900 "
         f"after its sticky drop, z sent 300000 by zero-copy sendfile")

    hits = {p["name"]: {str(r["rule"]): r for r in p["rules"]} for p in d["programs"]}
    route = hits["route"]
    for rule, n in (("1", 2), ("2", 2), ("3", 2), ("4", 1), ("5", 1), ("6", 1)):
        if route[rule]["hits"] != n:
            fail(f"route rule {rule} ({route[rule]['if']}): {route[rule]['hits']} hits, expected {n}")
    if route["1"]["dropped"] != 2 or route["2"]["redirected"] != 2 or route["0"]["passed"] < 2 \
            or route["0"]["if"] != 'data prefix "P"' or route["3"]["do"] != "redirect socks[2] ingress" \
            or hits["sticky"]["0"]["hits"] != 1 or route["default"]["hits"] != 0:
        fail(f"rule counters: {json.dumps(d['programs'])}")
    note("ok: per-rule hits: " + ", ".join(f"{k}: {v['hits']}" for k, v in route.items()))

    text = sockshim("dump", str(pid), "stats", env=env, code=None).stdout
    row = next((l.split() for l in text.splitlines()
                if l.split()[:2] == [str(ck["a"]), "tx"]), None)
    if row != [str(ck["a"]), "tx", str(sent["a"]), str(exp["pushed_a"]), str(exp["popped_a"]),
               str(got["a"]), str(exp["dropped_a"]), str(got["b"] + got["c"]), "0",
               row[-1] if row else ""]:
        fail(f"dump stats text, row of a:\n{text}")
    if "programs (per rule" not in text or 'data prefix "E"' not in text:
        fail(f"dump stats text, programs:\n{text}")
    note("ok: the text dump shows the same numbers")

    r = target.ask("flush")
    d = dump(pid, "stats", env=env)
    check_invariant(d, "after the cork filled")
    expect_tx(psocks(d)[ck["k"]], "k (flushed)",
              **{"in": 10000, "queued": 0, "passed": r["got"]["k"]})
    if r["got"]["k"] != 10000:
        fail(f"k's reader got {r['got']['k']} after the cork filled")
    note("ok: the cork's 10000 bytes went out when it filled; nothing held")
    return ck


def rx_phase(target, pid, env, ck):
    r = target.ask("rx")
    sent, exp, got = r["sent"], r["expect"], r["got"]
    for name in ("r", "re", "ri"):
        if got[name] != exp[name]:
            fail(f"rx reader {name} got {got[name]} bytes, expected {exp[name]}")
    # The engine reads the cut frame on its own time: wait until it took it in.
    deadline = time.monotonic() + 10
    while True:
        d = dump(pid, "stats", env=env)
        rx = psocks(d)[ck["r"]]["stats"]["rx"]
        if rx["in"] == sent["r"] or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    check_invariant(d, "rx, paused")
    want = {"in": sent["r"], "passed": got["r"], "dropped": exp["dropped_r"],
            "redirected": got["re"] + got["ri"], "queued": exp["held_r"], "pushed": 0, "popped": 0}
    if {k: rx[k] for k in want} != want:
        fail(f"r's rx counters {rx}, expected {want}")
    ps = psocks(d)
    # PASS puts r's frames into its own queue; I frames went into ri's.
    if ps[ck["ri"]]["stats"]["ingress_in"] != got["ri"] or ps[ck["r"]]["stats"]["tx"]["in"] != 0 \
            or ps[ck["r"]]["stats"]["ingress_in"] != got["r"]:
        fail(f"ingress_in: r {ps[ck['r']]['stats']}, ri {ps[ck['ri']]['stats']}; "
             f"readers got r {got['r']}, ri {got['ri']}")
    route = {str(x["rule"]): x["hits"] for p in d["programs"] if p["name"] == "rxroute"
             for x in p["rules"]}
    if route != {"0": 2, "1": 2, "2": 2, "3": 2, "default": 0}:
        fail(f"rxroute rule hits {route}")
    note(f"ok: rx: r's client sent {sent['r']} B: passed {got['r']}, dropped "
         f"{exp['dropped_r']}, redirected {got['re'] + got['ri']}, {exp['held_r']} held "
         f"of a frame cut short")
    r = target.ask("rxfinish")
    d = dump(pid, "stats", env=env)
    check_invariant(d, "rx, the frame completed")
    rx = psocks(d)[ck["r"]]["stats"]["rx"]
    if rx["in"] != r["sent"]["r"] or rx["queued"] != 0 or rx["passed"] != r["got"]["r"]:
        fail(f"r's rx counters after the frame completed: {rx}, reader got {r['got']['r']}")
    note("ok: rx: the rest of the frame came, the whole frame passed, nothing held")


def streaming_phase(target, pid, env, ck):
    target.ask("stream")
    before = None
    checked = 0
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        d = dump(pid, "stats", env=env)
        check_invariant(d, f"dump {checked} during traffic")
        a = psocks(d)[ck["a"]]["stats"]["total"]
        if before:
            for k in ("in", "passed", "dropped", "redirected", "pushed", "popped"):
                if a[k] < before[k]:
                    fail(f"a's {k} went back from {before[k]} to {a[k]}")
        first_in = a["in"] if before is None else first_in
        before = a
        checked += 1
    if before["in"] <= first_in:
        fail(f"a's in stayed at {first_in} during the traffic")
    r = target.ask("stop")
    sent, got, exp = r["sent"], r["got"], r["expect"]
    d = dump(pid, "stats", env=env)
    check_invariant(d, "after the traffic")
    ps = psocks(d)
    expect_tx(ps[ck["a"]], "a after the traffic", **{
        "in": sent["a"], "pushed": exp["pushed_a"], "popped": exp["popped_a"],
        "passed": got["a"], "dropped": exp["dropped_a"], "redirected": got["b"] + got["c"],
        "queued": 0})
    rx = ps[ck["r"]]["stats"]["rx"]
    want = {"in": sent["r"], "passed": got["r"], "dropped": exp["dropped_r"],
            "redirected": got["re"] + got["ri"], "queued": 0}
    if {k: rx[k] for k in want} != want or got["r"] != exp["r"]:
        fail(f"r's rx counters after the traffic {rx}, expected {want}")
    k = ps[ck["k"]]["stats"]["tx"]
    if k["in"] != sent["k"] or k["passed"] != got["k"] or k["queued"] != sent["k"] - got["k"]:
        fail(f"k after the traffic: {k}, sent {sent['k']}, its reader got {got['k']}")
    note(f"ok: {checked} dumps during traffic all add up; after it a sent {sent['a']} B, "
         f"k holds {k['queued']} B corked of {sent['k']}, r's client sent {sent['r']} B")


def main():
    with Target(os.path.join(HERE, "counters_target.py"), policy=POLICY) as target:
        pid, env = target.pid, target.env
        ck = fixed_phase(target, pid, env)
        rx_phase(target, pid, env, ck)
        streaming_phase(target, pid, env, ck)
        if target.finish() != 0:
            fail(f"the target exited {target.proc.returncode}")
    print("PASS counters", flush=True)


if __name__ == "__main__":
    main()
