// Compiled programs run against FakeKernel: conditions, verdicts, helpers.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <string>

#include "policy/policy.h"
#include "tools/fake_kernel.h"

using namespace sockshim::policy;

namespace {

std::unique_ptr<Policy> load(const std::string& text) {
  auto r = load_policy_text(text);
  for (const auto& e : r.errors) FAIL_CHECK(e.format("policy"));
  REQUIRE(r.ok());
  return std::move(r.policy);
}

SocketTuple tuple(uint16_t lport, uint16_t rport) {
  SocketTuple t;
  t.family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &t.local_ip4);
  inet_pton(AF_INET, "127.0.0.2", &t.remote_ip4);
  t.local_port = lport;
  t.remote_port = rport;
  return t;
}

SkMsg msg(const std::string& s) {
  return SkMsg({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}

std::string str(const SkMsg& m) {
  return std::string(reinterpret_cast<const char*>(m.bytes().data()), m.size());
}

const char* kMaps = R"(
  "sm": {"type": "sockmap", "max_entries": 4},
  "sh": {"type": "sockhash", "max_entries": 8, "key": ["local_ip4", "local_port", "remote_ip4", "remote_port"]},
  "st": {"type": "sk_storage", "flags": ["BPF_F_NO_PREALLOC"], "value": {"bytes": "u64", "calls": "u32", "delta": "i64", "tag": "bytes[4]"}})";

std::string policy_with(const std::string& programs) {
  return std::string(R"({"version": 1, "maps": {)") + kMaps + R"(}, "programs": {)" + programs +
         "}}";
}

Verdict run(const Program& p, FakeKernel& k, const std::string& data, uint16_t lport = 1000,
            uint16_t rport = 2000) {
  SkMsg m = msg(data);
  return p.run_msg(m, tuple(lport, rport), k).verdict;
}

}  // namespace

TEST_CASE("first rule that holds decides; default otherwise", "[policy][program]") {
  auto pol = load(policy_with(R"("p": {"type": "sk_msg", "default": "drop", "rules": [
      {"if": {"local_port": 6379, "data": {"contains": "FLUSHALL"}}, "do": ["drop"]},
      {"if": {"local_port": [6379, 6380]}, "do": ["pass"]},
      {"if": {"remote_port": {"range": [3000, 3999]}}, "do": ["pass"]},
      {"if": {"size": {"gt": 100}}, "do": [{"apply_bytes": 1}]}]})"));
  const Program& p = *pol->program("p");
  FakeKernel k(*pol);
  CHECK(run(p, k, "*1\r\n$8\r\nFLUSHALL\r\n", 6379) == Verdict::drop);
  CHECK(run(p, k, "GET a", 6379) == Verdict::pass);
  CHECK(run(p, k, "GET a", 6380) == Verdict::pass);
  CHECK(run(p, k, "x", 1, 3500) == Verdict::pass);
  CHECK(run(p, k, "x", 1, 4000) == Verdict::drop);
  // A rule without a verdict action returns the default.
  SkMsg big = msg(std::string(200, 'a'));
  const RunResult r = p.run_msg(big, tuple(1, 1), k);
  CHECK(r.rule == 3);
  CHECK(r.verdict == Verdict::drop);
  CHECK(big.apply_bytes() == 1);
  SkMsg none = msg("x");
  CHECK(p.run_msg(none, tuple(1, 1), k).rule == -1);
}

TEST_CASE("data conditions: prefix, contains, equals, integers, hex", "[policy][program]") {
  auto pol = load(policy_with(R"(
      "prefix": {"type": "sk_msg", "default": "drop", "rules": [{"if": {"data": {"prefix": "GET "}}, "do": ["pass"]}]},
      "equals": {"type": "sk_msg", "default": "drop", "rules": [{"if": {"data": {"equals": {"hex": "00ff"}}}, "do": ["pass"]}]},
      "ints": {"type": "sk_msg", "default": "drop", "rules": [{"if": {"data": {"at": 1, "be16": {"ge": 256}, "u8": 1}}, "do": ["pass"]}]},
      "le": {"type": "sk_msg", "default": "drop", "rules": [{"if": {"data": {"at": 0, "le32": 1}}, "do": ["pass"]}]})"));
  FakeKernel k(*pol);
  CHECK(run(*pol->program("prefix"), k, "GET /") == Verdict::pass);
  CHECK(run(*pol->program("prefix"), k, "GET") == Verdict::drop);
  CHECK(run(*pol->program("prefix"), k, "PUT /") == Verdict::drop);
  CHECK(run(*pol->program("equals"), k, std::string("\0\xff", 2)) == Verdict::pass);
  CHECK(run(*pol->program("equals"), k, std::string("\0\xff\0", 3)) == Verdict::drop);
  // be16 at 1 of 01 01 00: 0x0100 = 256, and u8 at 1 is 1.
  CHECK(run(*pol->program("ints"), k, std::string("\1\1\0", 3)) == Verdict::pass);
  CHECK(run(*pol->program("ints"), k, std::string("\1\0\xff", 3)) == Verdict::drop);
  // Out of the window: false.
  CHECK(run(*pol->program("ints"), k, std::string("\1\1", 2)) == Verdict::drop);
  CHECK(run(*pol->program("le"), k, std::string("\1\0\0\0", 4)) == Verdict::pass);
  CHECK(run(*pol->program("le"), k, std::string("\0\0\0\1", 4)) == Verdict::drop);
  CHECK(pol->program("prefix")->needs_data());
}

TEST_CASE("all, any, not, addresses and family", "[policy][program]") {
  auto pol = load(policy_with(R"("p": {"type": "sk_msg", "default": "drop", "rules": [
      {"if": {"family": "AF_INET", "local_ip4": "127.0.0.1",
              "any": [{"remote_port": 1}, {"remote_port": 2}],
              "not": {"remote_ip4": {"in": ["10.0.0.1", "10.0.0.2"]}}}, "do": ["pass"]},
      {"if": {"all": [{"local_ip6": "::1"}, {"family": "AF_INET6"}]}, "do": ["pass"]}]})"));
  const Program& p = *pol->program("p");
  FakeKernel k(*pol);
  CHECK(run(p, k, "x", 5, 1) == Verdict::pass);
  CHECK(run(p, k, "x", 5, 3) == Verdict::drop);
  CHECK_FALSE(p.needs_data());
  SocketTuple t = tuple(5, 1);
  inet_pton(AF_INET, "10.0.0.2", &t.remote_ip4);
  SkMsg m = msg("x");
  CHECK(p.run_msg(m, t, k).verdict == Verdict::drop);
  SocketTuple t6;
  t6.family = AF_INET6;
  inet_pton(AF_INET6, "::1", t6.local_ip6.data());
  CHECK(p.run_msg(m, t6, k).verdict == Verdict::pass);
}

TEST_CASE("redirect: target, flags, missing key, verdict mapping", "[policy][program]") {
  auto pol = load(policy_with(R"(
      "to1": {"type": "sk_msg", "rules": [{"do": [{"redirect": {"map": "sm", "key": 1, "flags": ["BPF_F_INGRESS"]}}]}]},
      "badflag": {"type": "sk_msg", "rules": [{"do": [{"redirect": {"map": "sm", "key": 1, "flags": [2]}}]}]},
      "thenpass": {"type": "sk_msg", "rules": [{"do": [{"redirect": {"map": "sm", "key": 1}}, "pass"]}]},
      "thendrop": {"type": "sk_msg", "rules": [{"do": [{"redirect": {"map": "sm", "key": 1}}, "drop"]}]},
      "peer": {"type": "sk_msg", "rules": [{"do": [{"redirect": {"map": "sh", "key": "peer", "flags": "BPF_F_INGRESS"}}]}]})"));
  FakeKernel k(*pol);
  CHECK(run(*pol->program("to1"), k, "x") == Verdict::redirect);
  REQUIRE(k.redirect_target());
  CHECK(k.redirect_target()->target == "sm[1]");
  CHECK(k.redirect_target()->flags == BPF_F_INGRESS);
  k.reset_run();
  CHECK(run(*pol->program("badflag"), k, "x") == Verdict::drop);
  CHECK_FALSE(k.redirect_target());
  CHECK(run(*pol->program("thenpass"), k, "x") == Verdict::redirect);
  CHECK(run(*pol->program("thendrop"), k, "x") == Verdict::drop);

  // Once the map has real entries, a missing key drops; a failed redirect
  // followed by pass sends on the source, as in the kernel.
  const uint32_t other = k.add_socket("other");
  const uint32_t sm = static_cast<uint32_t>(pol->map_index("sm"));
  CHECK(k.insert(sm, {2, 0, 0, 0}, other, BPF_ANY) == 0);
  k.reset_run();
  CHECK(run(*pol->program("to1"), k, "x") == Verdict::drop);
  CHECK(run(*pol->program("thenpass"), k, "x") == Verdict::pass);
  CHECK(k.insert(sm, {1, 0, 0, 0}, other, BPF_ANY) == 0);
  CHECK(run(*pol->program("to1"), k, "x") == Verdict::redirect);
  CHECK(k.redirect_target()->target == "other");

  // "peer" swaps local and remote: the key under which the other end was stored.
  const uint32_t sh = static_cast<uint32_t>(pol->map_index("sh"));
  SocketTuple peer_of = tuple(2000, 1000);
  std::swap(peer_of.local_ip4, peer_of.remote_ip4);
  std::vector<uint8_t> key(16);
  const uint32_t lport = 2000, rport = 1000;
  memcpy(&key[0], &peer_of.local_ip4, 4);
  memcpy(&key[4], &lport, 4);
  memcpy(&key[8], &peer_of.remote_ip4, 4);
  memcpy(&key[12], &rport, 4);
  CHECK(k.insert(sh, key, other, BPF_ANY) == 0);
  k.reset_run();
  CHECK(run(*pol->program("peer"), k, "x", 1000, 2000) == Verdict::redirect);
  CHECK(k.redirect_target()->key == key);
  CHECK(run(*pol->program("peer"), k, "x", 1000, 2001) == Verdict::drop);
}

TEST_CASE("msg helpers through actions", "[policy][program]") {
  auto pol = load(policy_with(R"("p": {"type": "sk_msg", "rules": [{"do": [
      {"apply_bytes": 4}, {"cork_bytes": 9}, {"push_data": {"start": 0, "bytes": "<<"}},
      {"pop_data": {"start": 5, "len": 2}}, {"pull_data": {"start": 1, "end": 3}},
      {"pop_data": {"start": 100, "len": 1}}, "pass"]}]})"));
  FakeKernel k(*pol);
  struct Trace : Tracer {
    std::vector<std::pair<std::string, long>> calls;
    void action(size_t, size_t, std::string_view name, long ret) override {
      calls.emplace_back(std::string(name), ret);
    }
  } trace;
  SkMsg m = msg("abcdefgh");
  const RunResult r = pol->program("p")->run_msg(m, tuple(1, 2), k, &trace);
  CHECK(r.verdict == Verdict::pass);
  CHECK(str(m) == "<<abcfgh");
  CHECK(m.apply_bytes() == 4);
  CHECK(m.cork_bytes() == 9);
  CHECK(m.data_start() == 1);
  CHECK(m.data_end() == 3);
  REQUIRE(trace.calls.size() == 7);
  CHECK(trace.calls[5] == std::make_pair(std::string("pop_data"), -long{EINVAL}));
}

TEST_CASE("storage: create, add, set, condition, delete", "[policy][program]") {
  auto pol = load(policy_with(R"("p": {"type": "sk_msg", "rules": [
      {"if": {"storage": {"map": "st", "field": "bytes", "gt": 10}}, "do": ["drop"]},
      {"if": {"data": {"prefix": "reset"}}, "do": [{"storage_delete": {"map": "st"}}, "pass"]},
      {"do": [{"storage": {"map": "st", "create": true, "add": {"bytes": "size", "calls": 1, "delta": -2},
                                                       "set": {"tag": "ab"}}}, "pass"]}]})"));
  const Program& p = *pol->program("p");
  FakeKernel k(*pol);
  const uint32_t st = static_cast<uint32_t>(pol->map_index("st"));
  CHECK(k.storage(st) == nullptr);
  CHECK(run(p, k, "123456") == Verdict::pass);
  REQUIRE(k.storage(st));
  CHECK(k.storage(st)->size() == 24);
  uint64_t bytes;
  memcpy(&bytes, k.storage(st)->data(), 8);
  CHECK(bytes == 6);
  CHECK(run(p, k, "12345") == Verdict::pass);
  memcpy(&bytes, k.storage(st)->data(), 8);
  CHECK(bytes == 11);
  uint32_t calls;
  memcpy(&calls, k.storage(st)->data() + 8, 4);
  CHECK(calls == 2);
  int64_t delta;
  memcpy(&delta, k.storage(st)->data() + 12, 8);
  CHECK(delta == -4);
  CHECK(memcmp(k.storage(st)->data() + 20, "ab\0\0", 4) == 0);
  CHECK(run(p, k, "x") == Verdict::drop);
  // The quota rule precedes the reset rule, so reset cannot run while over it:
  // delete through the helper directly, then the count starts again.
  CHECK(k.storage_delete(st) == 0);
  CHECK(k.storage_delete(st) == -ENOENT);
  CHECK(run(p, k, "x") == Verdict::pass);
}

TEST_CASE("storage condition with signed comparisons", "[policy][program]") {
  auto pol = load(policy_with(R"("p": {"type": "sk_msg", "default": "drop", "rules": [
      {"if": {"storage": {"map": "st", "field": "delta", "lt": -1}}, "do": ["pass"]},
      {"do": [{"storage": {"map": "st", "create": true, "add": {"delta": -1}}}]}]})"));
  const Program& p = *pol->program("p");
  FakeKernel k(*pol);
  CHECK(run(p, k, "x") == Verdict::drop);  // creates, delta -1
  CHECK(run(p, k, "x") == Verdict::drop);  // delta -2
  CHECK(run(p, k, "x") == Verdict::pass);
}

TEST_CASE("sockops: map_update only in established and listen ops", "[policy][program]") {
  auto pol = load(policy_with(R"("ops": {"type": "sockops", "rules": [
      {"if": {"op": "state_change"}, "do": [{"map_delete": {"map": "sh", "key": "self"}}]},
      {"if": {"local_port": 6379}, "do": [{"map_update": {"map": "sh", "key": "self", "flags": "BPF_NOEXIST"}},
                                          {"map_update": {"map": "sm", "key": 9}}]}]})"));
  const Program& p = *pol->program("ops");
  FakeKernel k(*pol);
  struct Trace : Tracer {
    std::vector<long> rets;
    void action(size_t, size_t, std::string_view, long ret) override { rets.push_back(ret); }
  } t;
  CHECK(p.run_sockops(SockOp::tcp_connect, tuple(6379, 1), k, &t).ret == 1);
  CHECK(t.rets == std::vector<long>{-EOPNOTSUPP, -EOPNOTSUPP});
  t.rets.clear();
  p.run_sockops(SockOp::passive_established, tuple(6379, 1), k, &t);
  CHECK(t.rets == std::vector<long>{0, -E2BIG});
  t.rets.clear();
  p.run_sockops(SockOp::listen, tuple(6379, 1), k, &t);
  CHECK(t.rets == std::vector<long>{-EEXIST, -E2BIG});
  const uint32_t sh = static_cast<uint32_t>(pol->map_index("sh"));
  CHECK(k.entries(sh).size() == 1);
  t.rets.clear();
  p.run_sockops(SockOp::state_change, tuple(6379, 1), k, &t);
  p.run_sockops(SockOp::state_change, tuple(6379, 1), k, &t);
  CHECK(t.rets == std::vector<long>{0, -ENOENT});
  CHECK(k.entries(sh).empty());
}

TEST_CASE("sk_skb verdicts see len and the frame", "[policy][program]") {
  auto pol = load(policy_with(R"("v": {"type": "sk_skb/stream_verdict", "rules": [
      {"if": {"len": {"lt": 3}}, "do": ["drop"]},
      {"if": {"data": {"prefix": "X"}}, "do": ["drop"]},
      {"do": [{"redirect": {"map": "sm", "key": 0}}]}]})"));
  const Program& p = *pol->program("v");
  FakeKernel k(*pol);
  auto frame = [](const char* s) {
    return std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(s), strlen(s));
  };
  CHECK(p.run_skb(frame("ab"), tuple(1, 2), k).verdict == Verdict::drop);
  CHECK(p.run_skb(frame("Xabc"), tuple(1, 2), k).verdict == Verdict::drop);
  CHECK(p.run_skb(frame("abc"), tuple(1, 2), k).verdict == Verdict::redirect);
}

TEST_CASE("explicit key objects and arrays with literals", "[policy][program]") {
  auto pol = load(R"({"version": 1, "maps": {
      "h": {"type": "sockhash", "max_entries": 4, "key": ["remote_ip4", "u32", "u64"]}},
      "programs": {
      "obj": {"type": "sk_msg", "rules": [{"do": [{"map_update": {"map": "h", "key": {"remote_ip4": "10.1.2.3", "u32": "local_port", "u64": 7}}}]}]},
      "arr": {"type": "sk_msg", "rules": [{"do": [{"map_update": {"map": "h", "key": ["local_ip4", 5, 9]}}]}]}}})");
  FakeKernel k(*pol);
  SkMsg m = msg("x");
  pol->program("obj")->run_msg(m, tuple(80, 1), k);
  pol->program("arr")->run_msg(m, tuple(80, 1), k);
  REQUIRE(k.entries(0).size() == 2);
  std::vector<uint8_t> want1(16), want2(16);
  in_addr a;
  inet_pton(AF_INET, "10.1.2.3", &a);
  const uint32_t port = 80, five = 5;
  const uint64_t seven = 7, nine = 9;
  memcpy(&want1[0], &a.s_addr, 4);
  memcpy(&want1[4], &port, 4);
  memcpy(&want1[8], &seven, 8);
  inet_pton(AF_INET, "127.0.0.1", &a);
  memcpy(&want2[0], &a.s_addr, 4);
  memcpy(&want2[4], &five, 4);
  memcpy(&want2[8], &nine, 8);
  CHECK(k.entries(0).count(want1) == 1);
  CHECK(k.entries(0).count(want2) == 1);
}

TEST_CASE("a valid policy fills MapSpec, attachments and sockops", "[policy][loader]") {
  auto pol = load(std::string(R"({"version": 1, "description": "d", "maps": {)") + kMaps +
                  R"(}, "programs": {
        "m": {"type": "sk_msg", "sticky_drop": false, "rules": []},
        "pa": {"type": "sk_skb/stream_parser", "frame": {"length_prefix": {"offset": 2, "size": 2, "endian": "little", "adjust": -1}, "max": 100}},
        "v": {"type": "sk_skb/verdict", "rules": []},
        "o": {"type": "sockops", "rules": []}},
      "attach": [{"program": "m", "map": "sh", "attach_type": "BPF_SK_MSG_VERDICT"},
                 {"program": "pa", "map": "sm", "attach_type": "BPF_SK_SKB_STREAM_PARSER"},
                 {"program": "v", "map": "sm", "attach_type": "BPF_SK_SKB_VERDICT"}],
      "sockops": ["o"]})");
  REQUIRE(pol->maps.size() == 3);
  CHECK(pol->description == "d");
  CHECK(pol->maps[0].type == MapType::sockmap);
  CHECK(pol->maps[0].key_size == 4);
  CHECK(pol->maps[0].value_size == 8);
  CHECK(pol->maps[1].key_size == 16);
  CHECK(pol->maps[1].key.size() == 4);
  CHECK(pol->maps[2].type == MapType::sk_storage);
  CHECK(pol->maps[2].flags == BPF_F_NO_PREALLOC);
  CHECK(pol->maps[2].value_size == 24);
  REQUIRE(pol->maps[2].value.size() == 4);
  CHECK(pol->maps[2].value[3].name == "tag");
  CHECK(pol->maps[2].value[3].offset == 20);
  CHECK(pol->maps[2].value[3].size == 4);
  REQUIRE(pol->attach.size() == 3);
  CHECK(pol->attached(1, AttachType::sk_msg_verdict) == pol->program("m"));
  CHECK(pol->attached(0, AttachType::sk_skb_verdict) == pol->program("v"));
  CHECK_FALSE(pol->program("m")->sticky_drop());
  CHECK(pol->program("v")->sticky_drop());
  REQUIRE(pol->sockops.size() == 1);
  CHECK(pol->sockops[0]->type() == ProgramType::sockops);
  const FrameSpec& f = pol->program("pa")->frame();
  CHECK(f.kind == FrameSpec::Kind::length_prefix);
  CHECK(f.offset == 2);
  CHECK(f.size == 2);
  CHECK_FALSE(f.big_endian);
  CHECK(f.adjust == -1);
  CHECK(f.max == 100);
  const std::string frame("ab\x05\x00xyz", 7);
  CHECK(pol->program("pa")->parse({reinterpret_cast<const uint8_t*>(frame.data()), 7}) == 4);
}
