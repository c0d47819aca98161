// Fused operations (bpf/fuse.h): each runs as the instructions it stands for
// would, in value, fault, instruction count and budget, including the edge
// cases fusion could get wrong.
#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "bpf_asm.h"

using namespace bpf_asm;
using namespace sockshim::bpf;

namespace {

constexpr int16_t kFamily = offsetof(sk_msg_md, family);
constexpr int16_t kLocalPort = offsetof(sk_msg_md, local_port);
constexpr int16_t kData = offsetof(sk_msg_md, data);
constexpr int16_t kDataEnd = offsetof(sk_msg_md, data_end);

struct Ctx {
  sk_msg_md md{};
  std::vector<uint8_t> data = std::vector<uint8_t>(16, 0xab);
  RunInput in;
  Ctx() {
    md.family = 2;
    md.local_port = 0xfffffff0;  // negative as a signed 32-bit value
    in.ctx = &md;
    in.ctx_ptrs[kSlotData] = reinterpret_cast<uint64_t>(data.data());
    in.ctx_ptrs[kSlotDataEnd] = reinterpret_cast<uint64_t>(data.data() + data.size());
  }
};

Loaded must_load(const std::vector<bpf_insn>& p) {
  Loaded l = load(p);
  INFO(l.log);
  REQUIRE(l.err == 0);
  return l;
}

RunResult run(const Loaded& l, const RunInput& in, uint64_t budget = kDefaultBudget) {
  Vm vm;
  vm.set_budget(budget);
  return vm.run(l.prog, in);
}

uint64_t r0_of(const std::vector<bpf_insn>& p, const RunInput& in, uint64_t insns) {
  const RunResult r = run(must_load(p), in);
  INFO(fault_kind_name(r.fault.kind) << " at insn " << r.fault.insn);
  REQUIRE(r.ok());
  CHECK(r.insns == insns);
  return r.r0;
}

// The condition as the ISA defines it, for the expected results.
bool holds(uint8_t op, uint64_t a, uint64_t b, bool is32) {
  if (is32) {
    a = static_cast<uint32_t>(a);
    b = static_cast<uint32_t>(b);
  }
  const int64_t sa = is32 ? static_cast<int32_t>(a) : static_cast<int64_t>(a);
  const int64_t sb = is32 ? static_cast<int32_t>(b) : static_cast<int64_t>(b);
  switch (op) {
    case BPF_JEQ:
      return a == b;
    case BPF_JNE:
      return a != b;
    case BPF_JGT:
      return a > b;
    case BPF_JGE:
      return a >= b;
    case BPF_JLT:
      return a < b;
    case BPF_JLE:
      return a <= b;
    case BPF_JSET:
      return (a & b) != 0;
    case BPF_JSGT:
      return sa > sb;
    case BPF_JSGE:
      return sa >= sb;
    case BPF_JSLT:
      return sa < sb;
    case BPF_JSLE:
      return sa <= sb;
  }
  return false;
}

}  // namespace

TEST_CASE("the compiled patterns are fused", "[bpf][fuse]") {
  std::vector<bpf_insn> p = {
      LDX_MEM(BPF_W, 2, 1, kFamily), JMP_IMM(BPF_JNE, 2, 2, 9),  // 0, 1
      LDX_MEM(BPF_DW, 2, 1, kData),  LDX_MEM(BPF_DW, 3, 1, kDataEnd), MOV64_REG(4, 2),
      ALU64_IMM(BPF_ADD, 4, 8),  // 4, 5
      JMP_REG(BPF_JGT, 4, 3, 5),     LDX_MEM(BPF_DW, 5, 2, 0)};
  LD_IMM64(p, 6, 0xabababababababab);  // 8, 9
  p.push_back(JMP_REG(BPF_JNE, 5, 6, 1));
  p.push_back(MOV64_IMM(0, 1));  // 11, 12
  p.push_back(EXIT());
  const Loaded l = must_load(p);
  CHECK(l.prog.code[0].op == op::LDXCW_JNE64);
  CHECK(l.prog.code[4].op == op::MOVADD_JGT);
  CHECK(l.prog.code[8].op == op::LDDW_JNE);
  CHECK(l.prog.code[11].op == op::MOV_EXIT);
  // The slots a fused operation covers keep their own decoding.
  CHECK(l.prog.code[1].op == op::JNE64_K);
  CHECK(l.prog.code[5].op == op::ADD64_K);
  CHECK(l.prog.code[6].op == op::JGT64_X);
  CHECK(l.prog.code[10].op == op::JNE64_X);
  CHECK(l.prog.code[12].op == op::EXIT);
  Ctx c;
  const RunResult r = run(l, c.in);
  REQUIRE(r.ok());
  CHECK(r.r0 == 1);
  CHECK(r.insns == 12);  // every instruction but the first exit's target
}

TEST_CASE("a fused context compare takes each condition as the ISA does", "[bpf][fuse]") {
  const uint8_t ops[] = {BPF_JEQ,  BPF_JNE,  BPF_JGT,  BPF_JGE,  BPF_JLT, BPF_JLE,
                         BPF_JSET, BPF_JSGT, BPF_JSGE, BPF_JSLT, BPF_JSLE};
  const int32_t imms[] = {0, 1, -1, -16, 0x7fffffff, static_cast<int32_t>(0x80000000), 5};
  Ctx c;
  for (bool is32 : {false, true})
    for (uint8_t o : ops)
      for (int32_t k : imms) {
        CAPTURE(is32, o, k);
        // r2 = local_port; if r2 <o> k goto +2; r0 = r2; exit; r0 = 1000 + ...; exit.
        const bpf_insn j = is32 ? JMP32_IMM(o, 2, k, 2) : JMP_IMM(o, 2, k, 2);
        const std::vector<bpf_insn> p = {
            LDX_MEM(BPF_W, 2, 1, kLocalPort), j,     MOV64_REG(0, 2), EXIT(), MOV64_REG(0, 2),
            ALU64_IMM(BPF_ADD, 0, 1),         EXIT()};
        const bool taken = holds(o, c.md.local_port, static_cast<uint64_t>(int64_t{k}), is32);
        // The loaded register is zero-extended whichever way the jump goes.
        CHECK(r0_of(p, c.in, taken ? 5 : 4) == uint64_t{c.md.local_port} + (taken ? 1 : 0));
      }
}

TEST_CASE("a fused context compare through another pointer runs as a plain load", "[bpf][fuse]") {
  Ctx c;
  // r3 points 32 bytes below the frame top; family's offset then reads
  // r10 - 16, which holds 7.
  const std::vector<bpf_insn> p = {ST_MEM(BPF_W, 10, -32 + kFamily, 7),
                                   MOV64_REG(3, 10),
                                   ALU64_IMM(BPF_ADD, 3, -32),
                                   LDX_MEM(BPF_W, 2, 3, kFamily),
                                   JMP_IMM(BPF_JEQ, 2, 7, 1),
                                   EXIT(),
                                   MOV64_IMM(0, 9),
                                   EXIT()};
  const Loaded l = must_load(p);
  REQUIRE(l.prog.code[3].op == op::LDXCW_JEQ64);
  CHECK(r0_of(p, c.in, 7) == 9);
  // And without a context at all.
  CHECK(r0_of(p, {}, 7) == 9);
}

TEST_CASE("a fused context compare whose load faults stops at the load", "[bpf][fuse]") {
  Ctx c;
  // r3 = 0: the load reads address 16.
  const std::vector<bpf_insn> p = {MOV64_IMM(0, 0), MOV64_IMM(3, 0), LDX_MEM(BPF_W, 2, 3, kFamily),
                                   JMP_IMM(BPF_JEQ, 2, 2, 0), EXIT()};
  const Loaded l = must_load(p);
  REQUIRE(l.prog.code[2].op == op::LDXCW_JEQ64);
  RunResult r = run(l, c.in);
  CHECK(r.fault.kind == FaultKind::load);
  CHECK(r.fault.insn == 2);
  CHECK(r.fault.addr == static_cast<uint64_t>(kFamily));
  CHECK(r.insns == 3);
  // Through r1 without a context: r1 is 0, the same fault.
  const std::vector<bpf_insn> q = {MOV64_IMM(0, 0), LDX_MEM(BPF_W, 2, 1, kFamily),
                                   JMP_IMM(BPF_JEQ, 2, 2, 0), EXIT()};
  r = run(must_load(q), {});
  CHECK(r.fault.kind == FaultKind::load);
  CHECK(r.fault.insn == 1);
}

TEST_CASE("a jump into a fused run runs only what follows its target", "[bpf][fuse]") {
  Ctx c;
  std::vector<bpf_insn> p = {MOV64_IMM(2, 9),
                             JMP_A(1),
                             LDX_MEM(BPF_W, 2, 1, kFamily),  // skipped: r2 stays 9
                             JMP_IMM(BPF_JEQ, 2, 9, 2),
                             MOV64_IMM(0, 0),
                             EXIT(),
                             MOV64_REG(4, 2),  // 6
                             JMP_A(1),
                             MOV64_REG(4, 2),  // 8, skipped: r4 stays 9
                             ALU64_IMM(BPF_ADD, 4, 8),
                             JMP_REG(BPF_JGT, 4, 2, 3),  // 17 > 9: taken
                             MOV64_IMM(0, 0),
                             EXIT(),
                             EXIT(),
                             MOV64_REG(0, 4),  // 14
                             JMP_A(1),
                             MOV64_IMM(0, 5),  // skipped
                             EXIT()};
  const Loaded l = must_load(p);
  REQUIRE(l.prog.code[2].op == op::LDXCW_JEQ64);
  REQUIRE(l.prog.code[8].op == op::MOVADD_JGT);
  REQUIRE(l.prog.code[16].op == op::MOV_EXIT);
  const RunResult r = run(l, c.in);
  REQUIRE(r.ok());
  CHECK(r.r0 == 17);
  CHECK(r.insns == 10);
}

TEST_CASE("a fused bounds check adds, compares and jumps", "[bpf][fuse]") {
  Ctx c;  // 16 bytes of packet
  for (int32_t need : {8, 16, 17}) {
    CAPTURE(need);
    // r0 = 1 when data + need <= data_end; r4 holds data + need either way.
    const std::vector<bpf_insn> p = {LDX_MEM(BPF_DW, 2, 1, kData),
                                     LDX_MEM(BPF_DW, 3, 1, kDataEnd),
                                     MOV64_REG(4, 2),
                                     ALU64_IMM(BPF_ADD, 4, need),
                                     JMP_REG(BPF_JGT, 4, 3, 3),
                                     ALU64_REG(BPF_SUB, 4, 2),
                                     MOV64_REG(0, 4),
                                     EXIT(),
                                     ALU64_REG(BPF_SUB, 4, 2),
                                     MOV64_REG(0, 4),
                                     ALU64_IMM(BPF_ADD, 0, 1000),
                                     EXIT()};
    REQUIRE(must_load(p).prog.code[2].op == op::MOVADD_JGT);
    const bool taken = need > 16;
    CHECK(r0_of(p, c.in, taken ? 9 : 8) == static_cast<uint64_t>(need + (taken ? 1000 : 0)));
  }
  // The jump compares the register with itself: never taken. And a mov-add
  // followed by something else fuses as the pair.
  const std::vector<bpf_insn> p = {MOV64_IMM(2, 40),          MOV64_REG(4, 2),
                                   ALU64_IMM(BPF_ADD, 4, -2), JMP_REG(BPF_JGT, 4, 4, 2),
                                   MOV64_REG(0, 2),           ALU64_IMM(BPF_ADD, 0, 2),
                                   ALU64_REG(BPF_ADD, 0, 4),  EXIT()};
  const Loaded l = must_load(p);
  REQUIRE(l.prog.code[1].op == op::MOVADD_JGT);
  REQUIRE(l.prog.code[4].op == op::MOVADD);
  CHECK(r0_of(p, {}, 8) == 80);
}

TEST_CASE("a fused lddw compare sets the register and jumps either way round", "[bpf][fuse]") {
  for (bool eq : {false, true})
    for (bool lddw_is_src : {false, true})
      for (uint64_t v : {uint64_t{0x1122334455667788}, uint64_t{0x1122334455667789}}) {
        CAPTURE(eq, lddw_is_src, v);
        std::vector<bpf_insn> p;
        LD_IMM64(p, 5, 0x1122334455667788);
        LD_IMM64(p, 6, v);
        const uint8_t o = eq ? BPF_JEQ : BPF_JNE;
        p.push_back(lddw_is_src ? JMP_REG(o, 5, 6, 2) : JMP_REG(o, 6, 5, 2));
        p.push_back(MOV64_REG(0, 6));
        p.push_back(EXIT());
        p.push_back(MOV64_IMM(0, 1));
        p.push_back(EXIT());
        const Loaded l = must_load(p);
        REQUIRE(l.prog.code[2].op == (eq ? op::LDDW_JEQ : op::LDDW_JNE));
        const bool taken = (v == 0x1122334455667788) == eq;
        CHECK(r0_of(p, {}, 5) == (taken ? 1 : v));
      }
}

TEST_CASE("a fused return works in a callee and zero-extends a 32-bit move", "[bpf][fuse]") {
  // main: call f; r0 += 1; exit.  f: w0 = -1; exit.
  const std::vector<bpf_insn> p = {CALL_REL(2), ALU64_IMM(BPF_ADD, 0, 1), EXIT(), MOV32_IMM(0, -1),
                                   EXIT()};
  const Loaded l = must_load(p);
  REQUIRE(l.prog.code[3].op == op::MOV_EXIT);
  CHECK(r0_of(p, {}, 5) == 0x100000000);
}

TEST_CASE("the budget stops inside fused runs where it stops unfused", "[bpf][fuse]") {
  Ctx c;
  // Straight-line: fused compares not taken, a bounds check not taken, an
  // lddw compare not taken, a fused return. Slots executed in order:
  std::vector<bpf_insn> p = {
      LDX_MEM(BPF_W, 2, 1, kFamily), JMP_IMM(BPF_JNE, 2, 2, 12),  // 0, 1
      LDX_MEM(BPF_DW, 2, 1, kData),  LDX_MEM(BPF_DW, 3, 1, kDataEnd), MOV64_REG(4, 2),
      ALU64_IMM(BPF_ADD, 4, 8),      JMP_REG(BPF_JGT, 4, 3, 8),  // 4, 5, 6
      LDX_MEM(BPF_DW, 5, 2, 0)};                                 // 7
  LD_IMM64(p, 6, 0xabababababababab);                            // 8, 9
  p.push_back(JMP_REG(BPF_JNE, 5, 6, 3));                        // 10
  p.push_back(MOV64_REG(4, 2));                                  // 11
  p.push_back(ALU64_IMM(BPF_ADD, 4, 1));                         // 12
  p.push_back(MOV64_IMM(0, 3));                                  // 13
  p.push_back(EXIT());                                           // 14
  p.push_back(MOV64_IMM(0, 0));                                  // 15
  p.push_back(EXIT());
  const std::vector<uint32_t> order = {0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14};
  const Loaded l = must_load(p);
  REQUIRE(l.prog.code[11].op == op::MOVADD);
  REQUIRE(l.prog.code[13].op == op::MOV_EXIT);
  RunResult r = run(l, c.in);
  REQUIRE(r.ok());
  CHECK(r.r0 == 3);
  CHECK(r.insns == order.size());
  for (uint64_t budget = 1; budget < order.size(); ++budget) {
    CAPTURE(budget);
    r = run(l, c.in, budget);
    CHECK(r.fault.kind == FaultKind::budget);
    CHECK(r.fault.insn == order[budget]);  // the first instruction with no budget left
    CHECK(r.insns == budget);
  }
}
