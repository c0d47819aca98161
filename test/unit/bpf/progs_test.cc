// Programs compiled by clang -target bpf from progs.bpf.c, loaded from the
// object file and run with the helpers a caller would supply. Skips (77) when
// the build had no clang.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <arpa/inet.h>

#include <cstring>
#include <string>
#include <vector>

#include "bpf/check.h"
#include "bpf/vm.h"
#include "elf_program.h"

using namespace sockshim::bpf;

namespace {

constexpr uint64_t kCounters = 0x1000, kSockMap = 0x2000;

struct World {
  uint64_t counters[4] = {};
  uint64_t bss[1] = {};  // `messages`
  struct {
    uint64_t map = 0, key = 0, flags = 0;
    int calls = 0;
  } redirect, update;
};
World* g_world;

uint64_t map_lookup_elem(Vm& vm, uint64_t map, uint64_t key, uint64_t, uint64_t, uint64_t) {
  const uint8_t* k = vm.mem(key, 4, false);
  if (!k || map != kCounters) {
    vm.fault();
    return 0;
  }
  uint32_t i;
  memcpy(&i, k, 4);
  if (i >= 4) return 0;
  vm.add_region(&g_world->counters[i], 8, true);
  return reinterpret_cast<uint64_t>(&g_world->counters[i]);
}

uint64_t msg_redirect_map(Vm& vm, uint64_t ctx, uint64_t map, uint64_t key, uint64_t flags,
                          uint64_t) {
  if (!vm.is_ctx(ctx) || !vm.uses_map(map)) {
    vm.fault();
    return 0;
  }
  g_world->redirect = {map, key, flags, g_world->redirect.calls + 1};
  return SK_PASS;
}

uint64_t sock_map_update(Vm& vm, uint64_t ctx, uint64_t map, uint64_t key, uint64_t flags,
                         uint64_t) {
  const uint8_t* k = vm.mem(key, 4, false);
  if (!vm.is_ctx(ctx) || !vm.uses_map(map) || !k) {
    vm.fault();
    return 0;
  }
  uint32_t kv;
  memcpy(&kv, k, 4);
  g_world->update = {map, kv, flags, g_world->update.calls + 1};
  return 0;
}

const HelperTable& helpers() {
  static const HelperTable t = [] {
    HelperTable t;
    t.fn[BPF_FUNC_map_lookup_elem] = map_lookup_elem;
    t.fn[BPF_FUNC_msg_redirect_map] = msg_redirect_map;
    t.fn[BPF_FUNC_sock_map_update] = sock_map_update;
    return t;
  }();
  return t;
}

LoadedProgram load_section(const std::string& section, ProgType type) {
  bpf_elf::Program p;
  const std::string err = bpf_elf::read_program(SOCKSHIM_BPF_PROGS_OBJECT, section, &p);
  INFO(err);
  REQUIRE(err.empty());
  LoadOptions o;
  o.type = type;
  o.helpers = &helpers();
  o.resolve_map = [&p](uint8_t pseudo, int32_t fd, uint32_t off, MapRef* r) {
    if (pseudo == BPF_PSEUDO_MAP_FD) {
      const std::string& name = p.maps.at(fd - bpf_elf::kMapFdBase);
      r->value = name == "counters" ? kCounters : kSockMap;
      return 0;
    }
    if (pseudo == BPF_PSEUDO_MAP_VALUE && p.data.at(fd - bpf_elf::kDataFdBase) == ".bss") {
      if (off >= sizeof g_world->bss) return -EINVAL;
      const auto base = reinterpret_cast<uint64_t>(g_world->bss);
      *r = {base + off, base, sizeof g_world->bss, true};
      return 0;
    }
    return -EINVAL;
  };
  LoadedProgram prog;
  std::string log;
  const int rc = load_program(p.insns, o, &prog, &log);
  INFO(log);
  REQUIRE(rc == 0);
  return prog;
}

RunResult run_msg(Vm& vm, const LoadedProgram& prog, std::string data, uint32_t local_port) {
  sk_msg_md md{};
  md.family = AF_INET;
  md.local_port = local_port;
  md.size = static_cast<uint32_t>(data.size());
  RunInput in;
  in.ctx = &md;
  in.ctx_ptrs[kSlotData] = reinterpret_cast<uint64_t>(data.data());
  in.ctx_ptrs[kSlotDataEnd] = reinterpret_cast<uint64_t>(data.data() + data.size());
  in.packet_writable = true;
  RunResult r = vm.run(prog, in);
  INFO(fault_kind_name(r.fault.kind) << " at insn " << r.fault.insn);
  REQUIRE(r.ok());
  return r;
}

}  // namespace

TEST_CASE("compiled sk_msg: map lookup, atomics, global data, a call, redirect", "[bpf][elf]") {
  World w;
  g_world = &w;
  const LoadedProgram prog = load_section("sk_msg", ProgType::sk_msg);
  Vm vm;
  CHECK(run_msg(vm, prog, "GET /", 6379).r0 == SK_PASS);
  CHECK(w.counters[1] == 5);
  CHECK(run_msg(vm, prog, "FLUSHALL", 6379).r0 == SK_DROP);
  CHECK(w.counters[1] == 13);
  CHECK(run_msg(vm, prog, "ab", 6).r0 == SK_PASS);  // bucket 6 & 3 = 2; too short to look at
  CHECK(w.counters[2] == 2);
  CHECK(run_msg(vm, prog, "RDR!", 7).r0 == SK_PASS);
  CHECK(w.redirect.calls == 1);
  CHECK(w.redirect.map == kSockMap);
  CHECK(w.redirect.key == 1);
  CHECK(w.bss[0] == 4);  // `messages`
}

TEST_CASE("compiled sk_skb verdict reads data through the __u32 fields", "[bpf][elf]") {
  World w;
  g_world = &w;
  const LoadedProgram prog = load_section("sk_skb/stream_verdict", ProgType::sk_skb);
  Vm vm;
  for (auto [bytes, verdict] :
       {std::pair<std::string, int>{"xyz", SK_DROP}, {"abc", SK_PASS}, {"", SK_DROP}}) {
    __sk_buff skb{};
    std::string data = bytes;
    RunInput in;
    in.ctx = &skb;
    in.ctx_ptrs[kSlotData] = reinterpret_cast<uint64_t>(data.data());
    in.ctx_ptrs[kSlotDataEnd] = reinterpret_cast<uint64_t>(data.data() + data.size());
    const RunResult r = vm.run(prog, in);
    CAPTURE(bytes);
    REQUIRE(r.ok());
    CHECK(r.r0 == static_cast<uint64_t>(verdict));
    CHECK(skb.priority == 7);
  }
}

TEST_CASE("compiled sock_ops: port byte order, reply, sock_map_update", "[bpf][elf]") {
  World w;
  g_world = &w;
  const LoadedProgram prog = load_section("sockops", ProgType::sock_ops);
  Vm vm;
  bpf_sock_ops ops{};
  ops.op = BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB;
  ops.local_port = 8080;          // host order
  ops.remote_port = htonl(5555);  // network order in the upper half
  RunInput in;
  in.ctx = &ops;
  RunResult r = vm.run(prog, in);
  REQUIRE(r.ok());
  CHECK(r.r0 == 1);
  CHECK(ops.reply == 5555);
  CHECK(w.update.calls == 1);
  CHECK(w.update.key == 5555);
  CHECK(w.update.map == kSockMap);
  ops.op = BPF_SOCK_OPS_TCP_CONNECT_CB;
  r = vm.run(prog, in);
  REQUIRE(r.ok());
  CHECK(r.r0 == 0);
  CHECK(w.update.calls == 1);
}

int main(int argc, char** argv) {
  if (std::string(SOCKSHIM_BPF_PROGS_OBJECT).empty()) {
    fprintf(stderr, "SKIP: no clang to compile the BPF test programs\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
