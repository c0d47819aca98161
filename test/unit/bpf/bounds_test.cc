// Run-time bounds: every access outside the regions a run may touch stops it
// with a fault naming the kind and the instruction; nothing else is touched.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstring>
#include <vector>

#include "bpf_asm.h"

using namespace bpf_asm;
using namespace sockshim::bpf;

namespace {

RunResult run(const std::vector<bpf_insn>& p, ProgType type, const RunInput& in,
              const HelperTable* helpers = nullptr, MapResolver resolver = {}) {
  Loaded l = load(p, type, helpers, std::move(resolver));
  INFO(l.log);
  REQUIRE(l.err == 0);
  Vm vm;
  return vm.run(l.prog, in);
}

void faults(const RunResult& r, FaultKind kind, uint32_t insn) {
  INFO(fault_kind_name(r.fault.kind) << " at insn " << r.fault.insn);
  CHECK(r.fault.kind == kind);
  CHECK(r.fault.insn == insn);
}

RunInput msg_input(sk_msg_md* md, std::vector<uint8_t>& data) {
  RunInput in;
  in.ctx = md;
  in.ctx_ptrs[kSlotData] = reinterpret_cast<uint64_t>(data.data());
  in.ctx_ptrs[kSlotDataEnd] = reinterpret_cast<uint64_t>(data.data() + data.size());
  return in;
}

}  // namespace

TEST_CASE("stack accesses outside the frames fault", "[bpf][bounds]") {
  // Underflow: the 8 bytes above the top of the stack.
  faults(run({MOV64_IMM(0, 0), LDX_MEM(BPF_DW, 0, 10, 0), EXIT()}, ProgType::sk_msg, {}),
         FaultKind::load, 1);
  // Overflow: below the 512-byte frame.
  faults(run({MOV64_IMM(0, 0), ST_MEM(BPF_DW, 10, -520, 1), EXIT()}, ProgType::sk_msg, {}),
         FaultKind::store, 1);
  // The last byte of the frame is fine, one more is not.
  CHECK(run({ST_MEM(BPF_B, 10, -512, 1), MOV64_IMM(0, 0), EXIT()}, ProgType::sk_msg, {}).ok());
  faults(run({ST_MEM(BPF_H, 10, -513, 1), MOV64_IMM(0, 0), EXIT()}, ProgType::sk_msg, {}),
         FaultKind::store, 0);
  // A callee's frame ends 512 bytes below its own r10 too.
  faults(run({CALL_REL(1), EXIT(), ST_MEM(BPF_B, 10, -513, 1), EXIT()}, ProgType::sk_msg, {}),
         FaultKind::store, 2);
  // A pointer into a callee's frame is dead once it returns.
  faults(run({CALL_REL(2), LDX_MEM(BPF_DW, 0, 0, 0), EXIT(), MOV64_REG(0, 10),
              ALU64_IMM(BPF_ADD, 0, -8), EXIT()},
             ProgType::sk_msg, {}),
         FaultKind::load, 1);
}

TEST_CASE("sk_msg context: what sk_msg_is_valid_access allows", "[bpf][bounds]") {
  sk_msg_md md{};
  md.family = 2;
  md.local_port = 8080;
  md.remote_port = 0x901f0000;  // htonl(8080): network order, upper half
  std::vector<uint8_t> data = {1, 2, 3};
  const RunInput in = msg_input(&md, data);
  const auto ro = ProgType::sk_msg;
  CHECK(run({LDX_MEM(BPF_W, 0, 1, offsetof(sk_msg_md, family)), EXIT()}, ro, in).r0 == 2);
  CHECK(run({LDX_MEM(BPF_W, 0, 1, offsetof(sk_msg_md, local_port)), EXIT()}, ro, in).r0 == 8080);
  CHECK(run({LDX_MEM(BPF_W, 0, 1, offsetof(sk_msg_md, remote_port)), EXIT()}, ro, in).r0 ==
        0x901f0000);
  CHECK(run({LDX_MEM(BPF_DW, 0, 1, offsetof(sk_msg_md, data_end)), EXIT()}, ro, in).r0 ==
        in.ctx_ptrs[kSlotDataEnd]);
  // Narrow loads, stores of any kind, the upper half of a pointer field, and
  // loads past the struct are refused.
  faults(run({LDX_MEM(BPF_H, 0, 1, offsetof(sk_msg_md, family)), EXIT()}, ro, in),
         FaultKind::ctx_load, 0);
  faults(run({LDX_MEM(BPF_W, 0, 1, offsetof(sk_msg_md, data) + 4), EXIT()}, ro, in),
         FaultKind::ctx_load, 0);
  faults(run({MOV64_IMM(0, 0), STX_MEM(BPF_W, 1, 0, offsetof(sk_msg_md, family)), EXIT()}, ro, in),
         FaultKind::ctx_store, 1);
  faults(run({LDX_MEM(BPF_W, 0, 1, sizeof(sk_msg_md)), EXIT()}, ro, in), FaultKind::load, 0);
  faults(run({LDX_MEM(BPF_W, 0, 1, -4), EXIT()}, ro, in), FaultKind::load, 0);
  CHECK(md.family == 2);
}

// The check answers loads through the context pointer itself from their
// offset (Decoded::aux); a copy, a moved pointer or no context at all must
// get the same answers from the run-time layout checks.
TEST_CASE("context loads answer alike through r1, a copy and a moved pointer", "[bpf][bounds]") {
  sk_msg_md md{};
  md.family = 10;
  std::vector<uint8_t> data = {1, 2, 3};
  const RunInput in = msg_input(&md, data);
  const auto ro = ProgType::sk_msg;
  const int16_t family = offsetof(sk_msg_md, family), end = offsetof(sk_msg_md, data_end);
  for (const int16_t moved : {0, 4, -4}) {
    INFO("pointer moved by " << moved);
    auto through = [&](uint8_t size, int16_t off) {
      return run({MOV64_REG(2, 1), ALU64_IMM(BPF_ADD, 2, moved),
                  LDX_MEM(size, 0, 2, static_cast<int16_t>(off - moved)), EXIT()},
                 ro, in);
    };
    CHECK(through(BPF_W, family).r0 == 10);
    CHECK(through(BPF_DW, end).r0 == in.ctx_ptrs[kSlotDataEnd]);
    faults(through(BPF_H, family), FaultKind::ctx_load, 2);
    faults(through(BPF_W, end + 4), FaultKind::ctx_load, 2);
    faults(through(BPF_W, sizeof(sk_msg_md)), FaultKind::load, 2);
    faults(through(BPF_W, -4), FaultKind::load, 2);
  }
  // No context: r1 is 0, and a load through it is an ordinary bad address.
  faults(run({LDX_MEM(BPF_W, 0, 1, family), EXIT()}, ro, {}), FaultKind::load, 0);
}

TEST_CASE("sk_skb context: what sk_skb_is_valid_access allows", "[bpf][bounds]") {
  __sk_buff skb{};
  skb.len = 0x01020304;
  skb.cb[0] = 5;
  skb.cb[1] = 6;
  std::vector<uint8_t> data(10);
  RunInput in;
  in.ctx = &skb;
  in.ctx_ptrs[kSlotData] = reinterpret_cast<uint64_t>(data.data());
  in.ctx_ptrs[kSlotDataEnd] = reinterpret_cast<uint64_t>(data.data() + data.size());
  const auto t = ProgType::sk_skb;
  // The __u32 data field loads as the full 64-bit pointer.
  CHECK(run({LDX_MEM(BPF_W, 0, 1, offsetof(__sk_buff, data)), EXIT()}, t, in).r0 ==
        in.ctx_ptrs[kSlotData]);
  CHECK(run({LDX_MEM(BPF_B, 0, 1, offsetof(__sk_buff, len) + 1), EXIT()}, t, in).r0 == 3);
  CHECK(run({LDX_MEM(BPF_DW, 0, 1, offsetof(__sk_buff, cb)), EXIT()}, t, in).r0 ==
        0x0000000600000005);
  CHECK(run({MOV64_IMM(2, 9), STX_MEM(BPF_W, 1, 2, offsetof(__sk_buff, priority)), MOV64_IMM(0, 0),
             EXIT()},
            t, in)
            .ok());
  CHECK(skb.priority == 9);
  faults(run({LDX_MEM(BPF_W, 0, 1, offsetof(__sk_buff, mark)), EXIT()}, t, in), FaultKind::ctx_load,
         0);
  faults(run({LDX_MEM(BPF_H, 0, 1, offsetof(__sk_buff, data)), EXIT()}, t, in), FaultKind::ctx_load,
         0);
  faults(run({LDX_MEM(BPF_DW, 0, 1, offsetof(__sk_buff, tstamp)), EXIT()}, t, in),
         FaultKind::ctx_load, 0);
  faults(run({MOV64_IMM(2, 1), STX_MEM(BPF_W, 1, 2, offsetof(__sk_buff, cb)), EXIT()}, t, in),
         FaultKind::ctx_store, 1);
  faults(run({MOV64_IMM(2, 1), STX_MEM(BPF_W, 1, 2, offsetof(__sk_buff, mark)), EXIT()}, t, in),
         FaultKind::ctx_store, 1);
  // BPF_ST (an immediate) never stores into the context.
  faults(run({ST_MEM(BPF_W, 1, offsetof(__sk_buff, priority), 1), EXIT()}, t, in),
         FaultKind::ctx_store, 0);
  faults(
      run({MOV64_IMM(2, 1), ATOMIC_OP(BPF_W, BPF_ADD, 1, 2, offsetof(__sk_buff, priority)), EXIT()},
          t, in),
      FaultKind::ctx_store, 1);
}

TEST_CASE("sock_ops context: what sock_ops_is_valid_access allows", "[bpf][bounds]") {
  bpf_sock_ops ops{};
  ops.op = BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB;
  ops.bytes_received = 0x100000001;
  ops.skb_tcp_flags = 0x12;
  RunInput in;
  in.ctx = &ops;
  const auto t = ProgType::sock_ops;
  CHECK(run({MOV64_IMM(2, 77), STX_MEM(BPF_W, 1, 2, offsetof(bpf_sock_ops, reply)),
             LDX_MEM(BPF_DW, 0, 1, offsetof(bpf_sock_ops, bytes_received)), EXIT()},
            t, in)
            .r0 == 0x100000001);
  CHECK(ops.reply == 77);
  CHECK(run({LDX_MEM(BPF_B, 0, 1, offsetof(bpf_sock_ops, skb_tcp_flags)), EXIT()}, t, in).r0 ==
        0x12);
  faults(run({MOV64_IMM(2, 1), STX_MEM(BPF_W, 1, 2, offsetof(bpf_sock_ops, op)), EXIT()}, t, in),
         FaultKind::ctx_store, 1);
  faults(run({MOV64_IMM(2, 1), STX_MEM(BPF_W, 1, 2, offsetof(bpf_sock_ops, replylong) + 4), EXIT()},
             t, in),
         FaultKind::ctx_store, 1);
  faults(run({LDX_MEM(BPF_W, 0, 1, offsetof(bpf_sock_ops, bytes_received)), EXIT()}, t, in),
         FaultKind::ctx_load, 0);
  faults(run({LDX_MEM(BPF_B, 0, 1, offsetof(bpf_sock_ops, family)), EXIT()}, t, in),
         FaultKind::ctx_load, 0);
  CHECK(ops.op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB);
}

TEST_CASE("packet accesses stay between data and data_end", "[bpf][bounds]") {
  sk_msg_md md{};
  std::vector<uint8_t> data = {10, 20, 30, 40};
  RunInput in = msg_input(&md, data);
  // r2 = data; r0 = *(u8 *)(r2 + off)
  auto load_at = [&](uint8_t size, int16_t off) {
    return run({LDX_MEM(BPF_DW, 2, 1, offsetof(sk_msg_md, data)), LDX_MEM(size, 0, 2, off), EXIT()},
               ProgType::sk_msg, in);
  };
  CHECK(load_at(BPF_B, 3).r0 == 40);
  CHECK(load_at(BPF_W, 0).r0 == 0x281e140a);
  faults(load_at(BPF_B, 4), FaultKind::load, 1);
  faults(load_at(BPF_W, 2), FaultKind::load, 1);
  faults(load_at(BPF_B, -1), FaultKind::load, 1);
  const std::vector<bpf_insn> store = {LDX_MEM(BPF_DW, 2, 1, offsetof(sk_msg_md, data)),
                                       ST_MEM(BPF_B, 2, 1, 99), MOV64_IMM(0, 0), EXIT()};
  faults(run(store, ProgType::sk_msg, in), FaultKind::store, 1);
  CHECK(data[1] == 20);
  in.packet_writable = true;
  CHECK(run(store, ProgType::sk_msg, in).ok());
  CHECK(data[1] == 99);
}

namespace {

uint64_t g_value[2];  // an array map of one 8-byte value, and a canary after it

// bpf_map_lookup_elem(map, key): checks the map and the key like the real one
// would, hands out the value and registers it.
uint64_t lookup(Vm& vm, uint64_t map, uint64_t key, uint64_t, uint64_t, uint64_t) {
  const uint8_t* k = vm.mem(key, 4, false);
  if (!k || !vm.uses_map(map)) {
    vm.fault();
    return 0;
  }
  uint32_t idx;
  memcpy(&idx, k, 4);
  if (idx != 0) return 0;
  vm.add_region(&g_value[0], 8, map == 0x1000);
  return reinterpret_cast<uint64_t>(&g_value[0]);
}

int resolve(uint8_t pseudo, int32_t fd, uint32_t, MapRef* r) {
  if (pseudo != BPF_PSEUDO_MAP_FD) return -EINVAL;
  r->value = fd == 1 ? 0x1000 : 0x2000;  // fd 1 writable, fd 2 read only (frozen)
  return 0;
}

// r0 = lookup(map fd, key 0); if !r0 return 0; then the access.
std::vector<bpf_insn> with_value(int fd, bpf_insn access) {
  std::vector<bpf_insn> p = {ST_MEM(BPF_W, 10, -4, 0), MOV64_REG(2, 10), ALU64_IMM(BPF_ADD, 2, -4)};
  LD_IMM64(p, 1, static_cast<uint64_t>(fd), BPF_PSEUDO_MAP_FD);
  p.push_back(CALL_HELPER(BPF_FUNC_map_lookup_elem));
  p.push_back(JMP_IMM(BPF_JEQ, 0, 0, 2));
  p.push_back(access);
  p.push_back(MOV64_IMM(0, 1));
  p.push_back(EXIT());
  return p;
}

}  // namespace

TEST_CASE("map values a helper returns are the only map memory", "[bpf][bounds]") {
  HelperTable t;
  t.fn[BPF_FUNC_map_lookup_elem] = lookup;
  g_value[0] = 5;
  g_value[1] = 0xcafe;
  // The access is instruction 7.
  CHECK(run(with_value(1, LDX_MEM(BPF_DW, 3, 0, 0)), ProgType::sk_msg, {}, &t, resolve).ok());
  CHECK(run(with_value(1, ST_MEM(BPF_DW, 0, 0, 6)), ProgType::sk_msg, {}, &t, resolve).ok());
  CHECK(g_value[0] == 6);
  faults(run(with_value(1, LDX_MEM(BPF_DW, 3, 0, 8)), ProgType::sk_msg, {}, &t, resolve),
         FaultKind::load, 7);
  faults(run(with_value(1, LDX_MEM(BPF_W, 3, 0, 6)), ProgType::sk_msg, {}, &t, resolve),
         FaultKind::load, 7);
  faults(run(with_value(2, ST_MEM(BPF_DW, 0, 0, 1)), ProgType::sk_msg, {}, &t, resolve),
         FaultKind::store, 7);
  CHECK(g_value[0] == 6);
  CHECK(g_value[1] == 0xcafe);
  // A key pointer outside the stack: the helper refuses, the run stops there.
  std::vector<bpf_insn> p = {MOV64_IMM(2, 64)};
  LD_IMM64(p, 1, 1, BPF_PSEUDO_MAP_FD);
  p.push_back(CALL_HELPER(BPF_FUNC_map_lookup_elem));
  p.push_back(EXIT());
  faults(run(p, ProgType::sk_msg, {}, &t, resolve), FaultKind::helper, 3);
}

TEST_CASE("global data: the map value regions an lddw references", "[bpf][bounds]") {
  static uint8_t bss[16], rodata[8] = {42};
  auto resolver = [](uint8_t pseudo, int32_t fd, uint32_t off, MapRef* r) {
    if (pseudo != BPF_PSEUDO_MAP_VALUE) return -EINVAL;
    uint8_t* base = fd == 1 ? bss : rodata;
    r->value = reinterpret_cast<uint64_t>(base) + off;
    r->region_start = reinterpret_cast<uint64_t>(base);
    r->region_len = fd == 1 ? sizeof bss : sizeof rodata;
    r->writable = fd == 1;
    return 0;
  };
  std::vector<bpf_insn> p;
  LD_IMM64(p, 1, 2, BPF_PSEUDO_MAP_VALUE);  // &rodata[0]
  p.back().imm = 0;
  LD_IMM64(p, 2, 1, BPF_PSEUDO_MAP_VALUE);  // &bss[8]
  p.back().imm = 8;
  p.push_back(LDX_MEM(BPF_B, 0, 1, 0));
  p.push_back(STX_MEM(BPF_DW, 2, 0, 0));
  p.push_back(EXIT());
  CHECK(run(p, ProgType::sk_msg, {}, nullptr, resolver).r0 == 42);
  CHECK(bss[8] == 42);
  p[5] = STX_MEM(BPF_DW, 2, 0, 1);  // bss[9..17): one byte past the end
  faults(run(p, ProgType::sk_msg, {}, nullptr, resolver), FaultKind::store, 5);
  p[5] = STX_MEM(BPF_B, 1, 0, 0);  // into rodata
  faults(run(p, ProgType::sk_msg, {}, nullptr, resolver), FaultKind::store, 5);
  CHECK(rodata[0] == 42);
}

TEST_CASE("atomics must be aligned", "[bpf][bounds]") {
  faults(run({MOV64_IMM(1, 1), ATOMIC_OP(BPF_DW, BPF_ADD, 10, 1, -12), MOV64_IMM(0, 0), EXIT()},
             ProgType::sk_msg, {}),
         FaultKind::misaligned_atomic, 1);
}

TEST_CASE("the instruction budget stops endless loops", "[bpf][bounds]") {
  Loaded l = load({MOV64_IMM(0, 0), ALU64_IMM(BPF_ADD, 0, 1), JMP_A(-2)});
  REQUIRE(l.err == 0);
  Vm vm;
  RunResult r = vm.run(l.prog, {});
  CHECK(r.fault.kind == FaultKind::budget);
  CHECK(r.insns == kDefaultBudget);
  vm.set_budget(1001);
  r = vm.run(l.prog, {});
  faults(r, FaultKind::budget, 1);  // 1 + 500 * (add, ja): next is the add
  CHECK(r.insns == 1001);
  // A run within the budget is unaffected.
  Loaded ok = load({MOV64_IMM(0, 3), EXIT()});
  CHECK(vm.run(ok.prog, {}).insns == 2);
}

namespace {

// Like bpf_msg_pull_data: the packet becomes its first byte only.
uint64_t shrink_packet(Vm& vm, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t) {
  const RunInput& in = vm.input();
  vm.set_packet(in.ctx_ptrs[kSlotData], in.ctx_ptrs[kSlotData] + 1);
  return 0;
}

// Registers one more byte of a buffer per call; r0 = 1 while the table takes it.
uint8_t g_bytes[kMaxDynamicRegions + 1];
uint64_t register_next(Vm& vm, uint64_t i, uint64_t, uint64_t, uint64_t, uint64_t) {
  return vm.add_region(&g_bytes[i], 1, false) ? 1 : 0;
}

}  // namespace

TEST_CASE("a helper that changes the packet moves data_end and the region", "[bpf][bounds]") {
  sk_msg_md md{};
  std::vector<uint8_t> data = {10, 20, 30, 40};
  const RunInput in = msg_input(&md, data);
  HelperTable t;
  t.fn[BPF_FUNC_msg_pull_data] = shrink_packet;
  // r6 = data; pull; r0 = data_end - data (reloaded); then a load at data[1].
  const std::vector<bpf_insn> p = {MOV64_REG(7, 1),
                                   LDX_MEM(BPF_DW, 6, 1, offsetof(sk_msg_md, data)),
                                   CALL_HELPER(BPF_FUNC_msg_pull_data),
                                   LDX_MEM(BPF_DW, 0, 7, offsetof(sk_msg_md, data_end)),
                                   ALU64_REG(BPF_SUB, 0, 6),
                                   LDX_MEM(BPF_B, 2, 6, 0),
                                   LDX_MEM(BPF_B, 2, 6, 1),
                                   EXIT()};
  faults(run(p, ProgType::sk_msg, in, &t), FaultKind::load, 6);
  std::vector<bpf_insn> q(p.begin(), p.end() - 2);
  q.push_back(EXIT());
  CHECK(run(q, ProgType::sk_msg, in, &t).r0 == 1);
}

TEST_CASE("the region table refuses the 17th region", "[bpf][bounds]") {
  HelperTable t;
  t.fn[BPF_FUNC_get_prandom_u32] = register_next;
  // for (r6 = 0; register_next(r6); r6++); r0 = r6
  const std::vector<bpf_insn> p = {MOV64_IMM(6, 0),
                                   MOV64_REG(1, 6),
                                   CALL_HELPER(BPF_FUNC_get_prandom_u32),
                                   ALU64_IMM(BPF_ADD, 6, 1),
                                   JMP_IMM(BPF_JNE, 0, 0, -4),
                                   MOV64_REG(0, 6),
                                   ALU64_IMM(BPF_SUB, 0, 1),
                                   EXIT()};
  CHECK(run(p, ProgType::sk_msg, {}, &t).r0 == kMaxDynamicRegions);
}
