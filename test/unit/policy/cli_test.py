#!/usr/bin/env python3
"""sockshim check and test-run as a user runs them: outputs, exit statuses, errors."""
import json
import os
import struct
import subprocess
import sys
import tempfile
import unittest

SOCKSHIM = sys.argv[1]
EXAMPLES = sys.argv[2]


def ex(name):
    return os.path.join(EXAMPLES, name)


def run(*args, stdin=None):
    p = subprocess.run([SOCKSHIM, *args], input=stdin, capture_output=True, timeout=30)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


BAD = """{
  "version": 1,
  "maps": {
    "m": { "type": "hashmap", "max_entries": 0 },
    "s": { "type": "sk_storage", "value": { "n": "u64" } }
  },
  "programs": { "p": { "type": "sk_msg", "rules": [ { "do": [ "accept" ] } ] } }
}
"""


class Check(unittest.TestCase):
    def test_ok_summary(self):
        rc, out, err = run("check", ex("forwarder.json"))
        self.assertEqual(rc, 0)
        self.assertEqual(out, ex("forwarder.json") +
                         ": ok: 1 map, 3 programs, 2 attachments, 1 sockops program\n")
        self.assertEqual(err, "")

    def test_every_example_is_valid(self):
        for name in sorted(os.listdir(EXAMPLES)):
            rc, out, _ = run("check", ex(name))
            self.assertEqual(rc, 0, name)
            self.assertIn(": ok: ", out)

    def test_ok_json(self):
        rc, out, _ = run("check", "--json", ex("byte_quota.json"))
        self.assertEqual(rc, 0)
        self.assertEqual(json.loads(out), {"file": ex("byte_quota.json"), "ok": True, "maps": 2,
                                           "programs": 2, "attachments": 1, "sockops": 1})

    def test_errors_text(self):
        rc, out, err = run("check", "-", stdin=BAD.encode())
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertEqual(err.splitlines(), [
            '<stdin>:4:20: /maps/m/type: expected one of "sockmap", "sockhash", "sk_storage"',
            '<stdin>:5:10: /maps/s: missing required key "flags"',
            '<stdin>:7:63: /programs/p/rules/0/do/0: expected "pass", "drop" or an action object',
            "<stdin>: 3 errors",
        ])

    def test_errors_json(self):
        rc, out, _ = run("check", "--json", "-", stdin=BAD.encode())
        self.assertEqual(rc, 1)
        j = json.loads(out)
        self.assertFalse(j["ok"])
        self.assertEqual(len(j["errors"]), 3)
        self.assertEqual(j["errors"][0], {"pointer": "/maps/m/type", "line": 4, "column": 20,
                                          "message": 'expected one of "sockmap", "sockhash", "sk_storage"'})

    def test_unreadable(self):
        rc, _, err = run("check", "/nonexistent.json")
        self.assertEqual(rc, 1)
        self.assertEqual(err, "cannot read policy /nonexistent.json: No such file or directory\n"
                              "/nonexistent.json: 1 error\n")

    def test_directory(self):
        # check and test-run say what the library, run and reload say.
        with tempfile.TemporaryDirectory() as d:
            rc, _, err = run("check", d)
            self.assertEqual(rc, 1)
            self.assertEqual(err, f"cannot read policy {d}: Is a directory\n{d}: 1 error\n")
            rc, out, _ = run("check", "--json", d)
            self.assertEqual(rc, 1)
            self.assertEqual(json.loads(out)["errors"], [
                {"pointer": "", "line": 0, "column": 0,
                 "message": f"cannot read policy {d}: Is a directory"}])
            rc, _, err = run("test-run", d, "verdict", "--input", "-", stdin=b"")
            self.assertEqual(rc, 1)
            self.assertEqual(err.splitlines()[0], f"cannot read policy {d}: Is a directory")

    def test_max_entries_limit(self):
        # What loading would refuse (out of memory), check refuses, naming the limit.
        def policy(n):
            return json.dumps({"version": 1, "maps": {
                "m": {"type": "sockmap", "max_entries": n},
                "h": {"type": "sockhash", "max_entries": n, "key": ["local_port"]}}})
        rc, out, err = run("check", "-", stdin=policy(1048576).encode())
        self.assertEqual((rc, err), (0, ""), out)
        rc, _, err = run("check", "-", stdin=policy(2000000000).encode())
        self.assertEqual(rc, 1)
        limit = "2000000000 is more than 1048576, the most entries a map may have"
        lines = err.splitlines()
        self.assertEqual(len(lines), 3, err)
        self.assertRegex(lines[0], r"^<stdin>:1:\d+: /maps/m/max_entries: " + limit)
        self.assertRegex(lines[1], r"^<stdin>:1:\d+: /maps/h/max_entries: " + limit)

    def test_usage(self):
        self.assertEqual(run("check")[0], 2)
        rc, _, err = run("check", "--yaml", ex("forwarder.json"))
        self.assertEqual(rc, 2)
        self.assertIn("unknown option '--yaml'", err)
        rc, _, err = run("check", ex("forwarder.json"), ex("byte_quota.json"))
        self.assertEqual(rc, 2)
        self.assertIn("one policy at a time", err)

    def test_help(self):
        rc, out, _ = run("check", "--help")
        self.assertEqual(rc, 0)
        for word in ("--json", "exit status", "JSON pointer"):
            self.assertIn(word, out)
        rc, out, _ = run("--help")
        self.assertIn("check POLICY", out)
        self.assertIn("test-run POLICY PROGRAM", out)


class TestRun(unittest.TestCase):
    def test_redis_flushall_dropped(self):
        rc, out, _ = run("test-run", ex("redis_drop_flushall.json"), "verdict", "--input", "-",
                         stdin=b"*1\r\n$8\r\nFLUSHALL\r\n")
        self.assertEqual(rc, 0)
        self.assertIn("verdict: drop (SK_DROP)\n", out)
        self.assertIn("log: verdict: dropped FLUSHALL\n", out)
        rc, out, _ = run("test-run", ex("redis_drop_flushall.json"), "verdict", "--input", "-",
                         stdin=b"*1\r\n$4\r\nPING\r\n")
        self.assertIn("verdict: pass (SK_PASS)\n", out)

    def test_redis_pipelined_commands_dropped_with_flushall(self):
        # The verdict drops the whole chunk, commands pipelined with FLUSHALL
        # included, as the kernel does; the example's description says so.
        with open(ex("redis_drop_flushall.json")) as f:
            description = json.load(f)["description"]
        self.assertIn("the whole message", description)
        self.assertIn("commands pipelined with FLUSHALL", description)
        self.assertIn("are dropped with it", description)
        rc, out, _ = run("test-run", ex("redis_drop_flushall.json"), "verdict", "--input", "-",
                         stdin=b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*1\r\n$8\r\nFLUSHALL\r\n")
        self.assertEqual(rc, 0)
        self.assertIn("verdict: drop (SK_DROP)\n", out)

    def test_redis_sockops_inserts(self):
        rc, out, _ = run("test-run", ex("redis_drop_flushall.json"), "insert", "--ctx",
                         '{"op": "passive_established", "local_port": 6379, "remote_port": 41000}')
        self.assertEqual(rc, 0)
        self.assertIn("action: rule 0 #0 map_update -> 0\n", out)
        self.assertIn("map: update server_socks{local_ip4=127.0.0.1, local_port=6379, "
                      "remote_ip4=127.0.0.1, remote_port=41000} = self\n", out)

    def test_sockops_update_refused_outside_established(self):
        rc, out, _ = run("test-run", ex("peer_acceleration.json"), "insert", "--ctx",
                         '{"op": 11}')
        self.assertIn("rule: none held", out)
        rc, out, _ = run("test-run", ex("forwarder.json"), "insert", "--ctx",
                         '{"op": "tcp_connect", "local_port": 8080}')
        self.assertIn("rule: none held", out)

    def test_parser_frames(self):
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"\0\0\0\2Xa\0\0\0\1b\0\0")
            f.flush()
            rc, out, _ = run("test-run", ex("length_prefix_drop_x.json"), "frames", "--input", f.name)
        self.assertEqual(rc, 0)
        self.assertIn("frames: 2 (6, 5 bytes)\nrest: 2 bytes wait for more\n", out)
        rc, out, _ = run("test-run", ex("length_prefix_drop_x.json"), "frames", "--input", "-",
                         stdin=b"\0\0\0\1a\x7f\0\0\0")
        self.assertIn("frames: 1 (5 bytes)\nerror: -90 (EMSGSIZE) (4 bytes not delivered)\n", out)
        rc, out, _ = run("test-run", ex("length_prefix_drop_x.json"), "drop_x", "--input", "-",
                         stdin=b"\0\0\0\2Xa")
        self.assertIn("verdict: drop", out)

    def test_forwarder_redirect(self):
        rc, out, _ = run("test-run", ex("forwarder.json"), "forward", "--ctx",
                         '{"local_port": 8080, "maps": {"pair": [{"key": 1, "socket": "backend"}]}}',
                         "--input", "-", stdin=b"hello")
        self.assertEqual(rc, 0)
        self.assertIn("verdict: redirect (SK_PASS)\nredirect: pair[1] -> backend, flags 0\n", out)
        rc, out, _ = run("test-run", ex("forwarder.json"), "forward", "--ctx",
                         '{"local_port": 9999, "maps": {"pair": [{"key": 1, "socket": "backend"}]}}')
        self.assertIn("verdict: drop (SK_DROP)\n", out)

    def test_peer_json(self):
        ctx = ('{"local_port": 40000, "remote_port": 6379, "maps": {"by_tuple": '
               '[{"key": "peer", "socket": "server"}]}}')
        rc, out, _ = run("test-run", ex("peer_acceleration.json"), "to_peer", "--ctx", ctx,
                         "--input", "-", "--json", stdin=b"PING")
        self.assertEqual(rc, 0)
        j = json.loads(out)
        self.assertEqual(j["verdict"], "redirect")
        self.assertEqual(j["redirect"]["target"], "server")
        self.assertEqual(j["redirect"]["flags"], "BPF_F_INGRESS")
        self.assertEqual(j["bytes"], '"PING"')
        rc, out, _ = run("test-run", ex("peer_acceleration.json"), "to_peer", "--ctx",
                         '{"maps": {"by_tuple": []}}', "--json")
        j = json.loads(out)
        self.assertEqual(j["verdict"], "pass")
        self.assertEqual([a["ret_text"] for a in j["actions"]], ["SK_DROP", "SK_PASS"])

    def test_byte_quota_storage(self):
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"x" * 600)
            f.flush()
            rc, out, _ = run("test-run", ex("byte_quota.json"), "count", "--input", f.name,
                             "--ctx", '{"storage": {"quota": {"bytes": 1000, "sends": 7}}}')
        self.assertEqual(rc, 0)
        self.assertIn('storage: quota: {"bytes":1000,"sends":7} -> {"bytes":1600,"sends":8}\n', out)
        rc, out, _ = run("test-run", ex("byte_quota.json"), "count",
                         "--ctx", '{"storage": {"quota": {"bytes": 1048576}}}')
        self.assertIn("verdict: drop (SK_DROP)\n", out)
        self.assertIn("log: count: quota exceeded\n", out)

    def test_push_pop_bytes(self):
        policy = json.dumps({"version": 1, "programs": {"p": {"type": "sk_msg", "rules": [{"do": [
            {"push_data": {"start": 0, "bytes": "<<"}}, {"pop_data": {"start": 4, "len": 2}},
            {"pop_data": {"start": 99, "len": 1}}, {"apply_bytes": 3}, {"cork_bytes": 5}]}]}}})
        with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
            f.write(policy)
            f.flush()
            rc, out, _ = run("test-run", f.name, "p", "--input", "-", stdin=b"abcdef")
        self.assertEqual(rc, 0)
        self.assertIn('apply_bytes: 3\ncork_bytes: 5\nsize: 6 (was 6)\nbytes: "<<abef"\n', out)
        self.assertIn("action: rule 0 #2 pop_data -> -22 (EINVAL)\n", out)

    def test_repeat(self):
        rc, out, _ = run("test-run", ex("byte_quota.json"), "count", "--repeat", "1000")
        self.assertEqual(rc, 0)
        self.assertRegex(out, r"time: [0-9.e+]+ ns per run \(1000 runs\)\n")
        rc, out, _ = run("test-run", ex("byte_quota.json"), "count", "--repeat", "10", "--json")
        self.assertEqual(json.loads(out)["repeat"], 10)

    def test_errors(self):
        cases = [
            (["test-run"], "expected POLICY and PROGRAM"),
            (["test-run", ex("forwarder.json")], "expected POLICY and PROGRAM"),
            (["test-run", ex("forwarder.json"), "forward", "--frobnicate"], "unknown option '--frobnicate'"),
            (["test-run", ex("forwarder.json"), "forward", "--ctx"], "--ctx needs a value"),
            (["test-run", ex("forwarder.json"), "nope"],
             "no program named 'nope' in " + ex("forwarder.json") + " (programs: insert, parser, forward)"),
            (["test-run", ex("forwarder.json"), "forward", "--ctx", "{"], "--ctx: not valid JSON"),
            (["test-run", ex("forwarder.json"), "forward", "--ctx", "[1]"], "--ctx: expected a JSON object"),
            (["test-run", ex("forwarder.json"), "forward", "--ctx", '{"local_port": 70000}'],
             "--ctx: /local_port: expected an integer from 0 to 65535"),
            (["test-run", ex("forwarder.json"), "forward", "--ctx", '{"local_ip4": "x"}'],
             "--ctx: /local_ip4: expected an IPv4 address"),
            (["test-run", ex("forwarder.json"), "forward", "--ctx", '{"port": 1}'],
             '--ctx: unknown key "port"'),
            (["test-run", ex("forwarder.json"), "forward", "--ctx", '{"maps": {"zz": []}}'],
             '--ctx: /maps/zz: no map named "zz"'),
            (["test-run", ex("forwarder.json"), "forward", "--ctx", '{"maps": {"pair": [{"key": 5, "socket": "s"}]}}'],
             "--ctx: /maps/pair/0: insert failed: Argument list too long"),
            (["test-run", ex("byte_quota.json"), "count", "--ctx", '{"storage": {"quota": {"nope": 1}}}'],
             '--ctx: /storage/quota/nope: no such field in map "quota"'),
            (["test-run", ex("forwarder.json"), "insert"], '--ctx: a sockops program needs "op"'),
            (["test-run", ex("forwarder.json"), "insert", "--ctx", '{"op": "accept"}'],
             "--ctx: /op: expected"),
            (["test-run", ex("forwarder.json"), "forward", "--repeat", "0"],
             "--repeat: expected a positive integer, got '0'"),
            (["test-run", ex("forwarder.json"), "forward", "--repeat", "-3"],
             "--repeat: expected a positive integer, got '-3'"),
            (["test-run", ex("forwarder.json"), "forward", "--input", "/nonexistent"],
             "--input: cannot read /nonexistent: No such file or directory"),
            (["test-run", "-", "forward", "--input", "-"],
             "POLICY and --input cannot both be standard input"),
        ]
        for args, msg in cases:
            rc, out, err = run(*args)
            self.assertEqual(rc, 2, args)
            self.assertIn("sockshim test-run: " + msg, err, args)
            self.assertEqual(out, "", args)

    def test_bad_policy(self):
        rc, out, err = run("test-run", "-", "p", stdin=BAD.encode())
        self.assertEqual(rc, 1)
        self.assertIn("<stdin>: 3 errors", err)

    def test_help_documents_flags_and_errors(self):
        rc, out, _ = run("test-run", "--help")
        self.assertEqual(rc, 0)
        for word in ("--input", "--ctx", "--repeat", "--json", "local_port", "storage", "maps",
                     "op", "exit status", "no program named", "BPF_PROG_TEST_RUN"):
            self.assertIn(word, out)


def insn(code, dst=0, src=0, off=0, imm=0):
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


EXIT = insn(0x95)
MOV_IMM = 0xb7  # BPF_ALU64 | BPF_MOV | BPF_K
MOV_REG = 0xbf
ADD_IMM = 0x07
LDX_W = 0x61
ST_B = 0x72
JGT_REG = 0x2d
CALL = 0x85
SKB_DATA, SKB_DATA_END, SKB_LEN = 76, 80, 0
BPF_FUNC_SKB_STORE_BYTES = 9

# Upper-cases nothing: writes 'Q' over the frame's first byte in place and '!'
# over its last with bpf_skb_store_bytes, then passes.
REWRITE = b"".join([
    insn(MOV_REG, 6, 1),
    insn(LDX_W, 2, 1, SKB_DATA), insn(LDX_W, 3, 1, SKB_DATA_END),
    insn(MOV_REG, 4, 2), insn(ADD_IMM, 4, 0, 0, 1), insn(JGT_REG, 4, 3, 1),
    insn(ST_B, 2, 0, 0, ord("Q")),
    insn(ST_B, 10, 0, -1, ord("!")),
    insn(MOV_REG, 1, 6), insn(LDX_W, 2, 6, SKB_LEN), insn(ADD_IMM, 2, 0, 0, -1),
    insn(MOV_REG, 3, 10), insn(ADD_IMM, 3, 0, 0, -1), insn(MOV_IMM, 4, 0, 0, 1),
    insn(MOV_IMM, 5), insn(CALL, 0, 0, 0, BPF_FUNC_SKB_STORE_BYTES),
    insn(MOV_IMM, 0, 0, 0, 1), EXIT])
# r0 = *(u32 *)(0 + 16): a fault at instruction 1.
FAULT = insn(MOV_IMM) + insn(LDX_W, 0, 0, 16) + EXIT
PASS = insn(MOV_IMM, 0, 0, 0, 1) + EXIT

VERDICTS = json.dumps({"version": 1, "programs": {
    "v": {"type": "sk_skb/verdict", "rules": [{"do": ["drop"]}]},
    "m": {"type": "sk_msg", "rules": [{"do": ["drop"]}]}}})


class TestRunBytecode(unittest.TestCase):
    def run_bytecode(self, program, code, *args, stdin=None):
        with tempfile.NamedTemporaryFile("w", suffix=".json") as pol, \
                tempfile.NamedTemporaryFile("wb", suffix=".bin") as bc:
            pol.write(VERDICTS)
            pol.flush()
            bc.write(code)
            bc.flush()
            return run("test-run", pol.name, program, "--bytecode", bc.name, *args, stdin=stdin)

    def test_rewritten_frame(self):
        rc, out, _ = self.run_bytecode("v", REWRITE, "--input", "-", stdin=b"hello?")
        self.assertEqual(rc, 0)
        self.assertIn("program: v (sk_skb/verdict)\nbytecode: 18 instructions\n", out)
        self.assertIn("verdict: pass (SK_PASS)\n", out)
        self.assertIn('bytes: "Qello!"\n', out)
        self.assertNotIn("rule:", out)

    def test_instructions_counted(self):
        rc, out, _ = self.run_bytecode("m", PASS, "--input", "-", stdin=b"abc")
        self.assertEqual(rc, 0)
        self.assertIn("bytecode: 2 instructions\nverdict: pass (SK_PASS)\n", out)
        rc, out, _ = self.run_bytecode("m", PASS, "--json")
        r = json.loads(out)
        self.assertEqual((r["insns"], r["fault"], r["ret"]), (2, None, "SK_PASS"))

    def test_fault(self):
        rc, out, _ = self.run_bytecode("v", FAULT, "--input", "-", stdin=b"abc")
        self.assertEqual(rc, 0)
        self.assertIn("bytecode: 2 instructions\nfault: insn 1: invalid memory read at 0x10\n"
                      "verdict: drop (SK_DROP)\n", out)
        rc, out, _ = self.run_bytecode("v", FAULT, "--json")
        r = json.loads(out)
        self.assertEqual(r["fault"], {"kind": "invalid memory read", "insn": 1, "addr": 16})
        self.assertEqual(r["verdict"], "drop")

    def test_errors(self):
        rc, _, err = self.run_bytecode("m", PASS[:5])
        self.assertEqual(rc, 2)
        self.assertIn("5 bytes, not a whole number of 8-byte instructions", err)
        rc, _, err = self.run_bytecode("m", insn(0xff) + EXIT)
        self.assertEqual(rc, 2)
        self.assertRegex(err, r"--bytecode: .*\.bin: insn 0: unknown opcode")
        rc, _, err = run("test-run", ex("forwarder.json"), "forward", "--bytecode", "/nonexistent")
        self.assertEqual(rc, 2)
        self.assertIn("--bytecode: cannot read /nonexistent", err)
        rc, out, _ = run("test-run", "--help")
        self.assertIn("--bytecode FILE", out)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
