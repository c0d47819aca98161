// A fixed policy with every condition and action kind, run on fuzzed bytes,
// context and helper answers: no crash, no out-of-bounds read, and the SkMsg
// invariants hold (window inside the message).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "policy/policy.h"
#include "tools/fake_kernel.h"

namespace {

using namespace sockshim::policy;

constexpr const char kPolicy[] = R"({"version": 1,
  "maps": {
    "sm": {"type": "sockmap", "max_entries": 4},
    "sh": {"type": "sockhash", "max_entries": 4, "key": ["family", "local_ip6", "local_port", "u64"]},
    "st": {"type": "sk_storage", "flags": ["BPF_F_NO_PREALLOC"], "value": {"a": "u8", "b": "u16", "c": "i64", "d": "bytes[3]"}}},
  "programs": {
    "msg": {"type": "sk_msg", "rules": [
      {"if": {"data": {"at": 0, "u8": {"range": [0, 15]}}}, "do": [{"pull_data": {"start": 1, "end": 9}}, "pass"]},
      {"if": {"data": {"at": 1, "be16": {"in": [1, 2, 3]}, "le32": {"ne": 0}}}, "do": [{"push_data": {"start": 3, "bytes": "xyz"}}, {"pop_data": {"start": 0, "len": 5}}]},
      {"if": {"any": [{"data": {"prefix": "GET"}}, {"data": {"contains": {"hex": "0d0a0d0a"}}}], "not": {"size": {"gt": 1000}}},
       "do": [{"redirect": {"map": "sh", "key": ["family", "local_ip6", "remote_port", 7]}}, {"apply_bytes": 3}, {"cork_bytes": 9}]},
      {"if": {"storage": {"map": "st", "field": "c", "lt": -5}}, "do": [{"storage_delete": {"map": "st"}}, "drop"]},
      {"if": {"data": {"equals": "x"}}, "do": [{"redirect": {"map": "sm", "key": 3, "flags": [7]}}]},
      {"if": {"local_ip4": {"range": ["10.0.0.0", "10.255.255.255"]}, "remote_ip6": {"ne": "::1"}}, "do": [{"map_delete": {"map": "sm", "key": 1}}]},
      {"do": [{"storage": {"map": "st", "create": true, "add": {"a": 1, "b": "size", "c": -1}, "set": {"d": "ab"}}},
              {"map_update": {"map": "sm", "key": "local_port", "flags": 3}},
              {"pop_data": {"start": 2, "len": 4}}, {"push_data": {"start": 0, "bytes": "<"}}, {"log": "l"},
              {"redirect": {"map": "sm", "key": "remote_port", "flags": "BPF_F_INGRESS"}}]}]},
    "skb": {"type": "sk_skb/verdict", "rules": [
      {"if": {"len": {"le": 3}, "data": {"at": 2, "be32": {"ge": 5}}}, "do": ["drop"]},
      {"do": [{"redirect": {"map": "sh", "key": {"family": 10, "local_ip6": "::1", "local_port": "local_port", "u64": 1}}}]}]},
    "ops": {"type": "sockops", "rules": [
      {"if": {"op": ["listen", "passive_established", 99]}, "do": [{"map_update": {"map": "sm", "key": "remote_port"}}]},
      {"do": [{"map_update": {"map": "sh", "key": ["family", "local_ip6", "local_port", 5], "flags": "BPF_NOEXIST"}}]}]},
    "lp": {"type": "sk_skb/stream_parser", "frame": {"length_prefix": {"offset": 1, "size": 8, "endian": "little", "adjust": -3}, "max": 4096}},
    "dl": {"type": "sk_skb/stream_parser", "frame": {"delimiter": "\r\n", "max": 64}},
    "fx": {"type": "sk_skb/stream_parser", "frame": {"fixed": 7, "max": 9}}}})";

const Policy& policy() {
  static const Policy* p = [] {
    LoadResult r = load_policy_text(kPolicy);
    if (!r.ok()) abort();
    return r.policy.release();
  }();
  return *p;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Policy& pol = policy();
  SocketTuple sk;
  uint8_t op = 0;
  if (size >= 48) {
    memcpy(&sk.family, data, 4);
    memcpy(&sk.local_ip4, data + 4, 4);
    memcpy(&sk.remote_ip4, data + 8, 4);
    memcpy(sk.local_ip6.data(), data + 12, 16);
    memcpy(sk.remote_ip6.data(), data + 28, 16);
    memcpy(&sk.local_port, data + 44, 2);
    memcpy(&sk.remote_port, data + 46, 2);
    op = size > 48 ? data[48] : 0;
    data += 48;
    size -= 48;
  }
  const std::span<const uint8_t> bytes(data, size);
  FakeKernel k(pol);
  if (op & 1) k.clear_map(0);
  for (int round = 0; round < 3; ++round) {
    SkMsg m(bytes);
    pol.program("msg")->run_msg(m, sk, k);
    if (m.data_start() > m.data_end() || m.data_end() > m.size()) abort();
    pol.program("skb")->run_skb(bytes, sk, k);
    pol.program("ops")->run_sockops(static_cast<SockOp>(op), sk, k);
  }
  for (const char* p : {"lp", "dl", "fx"}) {
    const int64_t n = pol.program(p)->parse(bytes);
    if (n > 0 && static_cast<uint64_t>(n) > bytes.size()) abort();
  }
  return 0;
}
