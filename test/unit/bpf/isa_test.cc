// The instruction set, class by class, against results worked out by hand.
#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "bpf_asm.h"

using namespace bpf_asm;
using namespace sockshim::bpf;

namespace {

// Runs a program that needs no context and returns r0.
uint64_t r0_of(std::vector<bpf_insn> p) {
  Loaded l = load(p);
  INFO(l.log);
  REQUIRE(l.err == 0);
  Vm vm;
  RunResult r = vm.run(l.prog, {});
  INFO(fault_kind_name(r.fault.kind) << " at insn " << r.fault.insn);
  REQUIRE(r.ok());
  return r.r0;
}

// r0 = a; r1 = b; r0 op= r1 (or op= b as an immediate); exit.
uint64_t alu64(uint8_t op, int64_t a, int32_t b, bool reg, int16_t off = 0) {
  std::vector<bpf_insn> p;
  LD_IMM64(p, 0, static_cast<uint64_t>(a));
  p.push_back(MOV64_IMM(1, b));
  p.push_back(reg ? ALU64_REG_OFF(op, 0, 1, off) : ALU64_IMM_OFF(op, 0, b, off));
  p.push_back(EXIT());
  return r0_of(p);
}

uint64_t alu32(uint8_t op, int64_t a, int32_t b, bool reg, int16_t off = 0) {
  std::vector<bpf_insn> p;
  LD_IMM64(p, 0, static_cast<uint64_t>(a));
  p.push_back(MOV64_IMM(1, b));
  p.push_back(reg ? ALU32_REG_OFF(op, 0, 1, off) : insn(BPF_ALU | op | BPF_K, 0, 0, off, b));
  p.push_back(EXIT());
  return r0_of(p);
}

}  // namespace

TEST_CASE("ALU64 with immediate and register operands", "[bpf][isa]") {
  for (bool reg : {false, true}) {
    CAPTURE(reg);
    CHECK(alu64(BPF_ADD, 5, 7, reg) == 12);
    CHECK(alu64(BPF_ADD, 5, -7, reg) == static_cast<uint64_t>(-2));
    CHECK(alu64(BPF_SUB, 5, 7, reg) == static_cast<uint64_t>(-2));
    CHECK(alu64(BPF_MUL, 0x100000000, 3, reg) == 0x300000000);
    CHECK(alu64(BPF_DIV, 100, 7, reg) == 14);
    CHECK(alu64(BPF_DIV, 100, -1, reg) == 0);  // -1 sign-extends: unsigned max
    CHECK(alu64(BPF_MOD, 100, 7, reg) == 2);
    CHECK(alu64(BPF_OR, 0xf0, 0x0f, reg) == 0xff);
    CHECK(alu64(BPF_AND, 0xff0, 0x0ff, reg) == 0x0f0);
    CHECK(alu64(BPF_XOR, 0xff, 0x0f, reg) == 0xf0);
    CHECK(alu64(BPF_LSH, 1, 63, reg) == 0x8000000000000000);
    CHECK(alu64(BPF_RSH, -1, 60, reg) == 0xf);
    CHECK(alu64(BPF_ARSH, -64, 3, reg) == static_cast<uint64_t>(-8));
    CHECK(alu64(BPF_MOV, 99, -1, reg) == UINT64_MAX);
  }
  CHECK(r0_of({MOV64_IMM(0, 5), ALU64_IMM(BPF_NEG, 0, 0), EXIT()}) == static_cast<uint64_t>(-5));
}

TEST_CASE("ALU32 works on the low half and zero-extends", "[bpf][isa]") {
  for (bool reg : {false, true}) {
    CAPTURE(reg);
    CHECK(alu32(BPF_ADD, 0x1ffffffff, 1, reg) == 0);
    CHECK(alu32(BPF_SUB, 0x500000000, 1, reg) == 0xffffffff);
    CHECK(alu32(BPF_MUL, 0x10000, 0x10000, reg) == 0);
    CHECK(alu32(BPF_DIV, 0x700000064, 7, reg) == 14);
    CHECK(alu32(BPF_MOD, 0x700000064, 7, reg) == 2);
    CHECK(alu32(BPF_OR, 0xff00000000, 1, reg) == 1);
    CHECK(alu32(BPF_LSH, 0xff, 28, reg) == 0xf0000000);
    CHECK(alu32(BPF_RSH, 0xf0000000f0000000, 28, reg) == 0xf);
    CHECK(alu32(BPF_ARSH, 0x80000000, 4, reg) == 0xf8000000);
    CHECK(alu32(BPF_MOV, 0x1234567800000000, -1, reg) == 0xffffffff);
  }
  CHECK(r0_of({MOV64_IMM(0, 5), ALU32_IMM(BPF_NEG, 0, 0), EXIT()}) == 0xfffffffb);
  // Register shift amounts are masked to the width.
  CHECK(r0_of({MOV64_IMM(0, 1), MOV64_IMM(1, 65), ALU64_REG(BPF_LSH, 0, 1), EXIT()}) == 2);
  CHECK(r0_of({MOV64_IMM(0, 1), MOV64_IMM(1, 33), ALU32_REG(BPF_LSH, 0, 1), EXIT()}) == 2);
}

TEST_CASE("division by zero gives 0, modulo by zero keeps dst", "[bpf][isa]") {
  CHECK(alu64(BPF_DIV, 100, 0, true) == 0);
  CHECK(alu64(BPF_MOD, 100, 0, true) == 100);
  CHECK(alu32(BPF_DIV, 100, 0, true) == 0);
  // The 32-bit modulo truncates dst, as the kernel's patched sequence does.
  CHECK(alu32(BPF_MOD, 0x500000064, 0, true) == 100);
  CHECK(alu64(BPF_DIV, 100, 0, true, 1) == 0);
  CHECK(alu64(BPF_MOD, -100, 0, true, 1) == static_cast<uint64_t>(-100));
  CHECK(alu32(BPF_MOD, 0x5ffffff9c, 0, true, 1) == 0xffffff9c);
}

TEST_CASE("signed division and modulo (off 1)", "[bpf][isa]") {
  for (bool reg : {false, true}) {
    CAPTURE(reg);
    CHECK(alu64(BPF_DIV, -100, 7, reg, 1) == static_cast<uint64_t>(-14));
    CHECK(alu64(BPF_MOD, -100, 7, reg, 1) == static_cast<uint64_t>(-2));
    CHECK(alu64(BPF_DIV, 100, -7, reg, 1) == static_cast<uint64_t>(-14));
    CHECK(alu64(BPF_MOD, 100, -7, reg, 1) == 2);
    CHECK(alu64(BPF_DIV, INT64_MIN, -1, reg, 1) == static_cast<uint64_t>(INT64_MIN));
    CHECK(alu64(BPF_MOD, INT64_MIN, -1, reg, 1) == 0);
    CHECK(alu32(BPF_DIV, 0xffffff9c, 7, reg, 1) == 0xfffffff2);  // -100 / 7 = -14
    CHECK(alu32(BPF_MOD, 0xffffff9c, 7, reg, 1) == 0xfffffffe);
    CHECK(alu32(BPF_DIV, 0x80000000, -1, reg, 1) == 0x80000000);
  }
}

TEST_CASE("sign-extending moves and byte swaps", "[bpf][isa]") {
  auto movsx = [](bool is64, int16_t off, uint64_t v) {
    std::vector<bpf_insn> p;
    LD_IMM64(p, 1, v);
    p.push_back(is64 ? ALU64_REG_OFF(BPF_MOV, 0, 1, off) : ALU32_REG_OFF(BPF_MOV, 0, 1, off));
    p.push_back(EXIT());
    return r0_of(p);
  };
  CHECK(movsx(true, 8, 0x1ff) == UINT64_MAX);
  CHECK(movsx(true, 16, 0x17fff) == 0x7fff);
  CHECK(movsx(true, 32, 0x80000000) == 0xffffffff80000000);
  CHECK(movsx(false, 8, 0x80) == 0xffffff80);
  CHECK(movsx(false, 16, 0xffff8000) == 0xffff8000);

  auto swap = [](bpf_insn op) {
    std::vector<bpf_insn> p;
    LD_IMM64(p, 0, 0x1122334455667788);
    p.push_back(op);
    p.push_back(EXIT());
    return r0_of(p);
  };
  CHECK(swap(ENDIAN(BPF_TO_BE, 0, 16)) == 0x8877);
  CHECK(swap(ENDIAN(BPF_TO_BE, 0, 32)) == 0x88776655);
  CHECK(swap(ENDIAN(BPF_TO_BE, 0, 64)) == 0x8877665544332211);
  CHECK(swap(ENDIAN(BPF_TO_LE, 0, 16)) == 0x7788);
  CHECK(swap(ENDIAN(BPF_TO_LE, 0, 32)) == 0x55667788);
  CHECK(swap(ENDIAN(BPF_TO_LE, 0, 64)) == 0x1122334455667788);
  CHECK(swap(BSWAP(0, 16)) == 0x8877);
  CHECK(swap(BSWAP(0, 64)) == 0x8877665544332211);
}

TEST_CASE("lddw loads 64 bits", "[bpf][isa]") {
  std::vector<bpf_insn> p;
  LD_IMM64(p, 0, 0xdeadbeefcafef00d);
  p.push_back(EXIT());
  CHECK(r0_of(p) == 0xdeadbeefcafef00d);
}

TEST_CASE("conditional jumps, 64 and 32 bit, taken and not", "[bpf][isa]") {
  struct Case {
    uint8_t op;
    int64_t a;
    int32_t b;
    bool taken64, taken32;
  };
  // a's upper half differs from its lower half so the 32-bit forms disagree.
  const Case cases[] = {
      {BPF_JEQ, 0x100000005, 5, false, true},   {BPF_JNE, 0x100000005, 5, true, false},
      {BPF_JGT, 0x100000001, 5, true, false},   {BPF_JGE, 5, 5, true, true},
      {BPF_JLT, 0x100000001, 5, false, true},   {BPF_JLE, 6, 5, false, false},
      {BPF_JSET, 0x100000000, 1, false, false}, {BPF_JSET, 3, 2, true, true},
      {BPF_JSGT, -1, -2, true, true},           {BPF_JSGT, 0xffffffff, 0, true, false},
      {BPF_JSGE, -2, -2, true, true},           {BPF_JSLT, -3, -2, true, true},
      {BPF_JSLT, 0x80000000, 0, false, true},   {BPF_JSLE, 0x7fffffff, -1, false, false},
  };
  for (const Case& c : cases) {
    for (int form = 0; form < 4; ++form) {
      const bool is32 = form & 2, reg = form & 1;
      CAPTURE(c.op, c.a, c.b, is32, reg);
      std::vector<bpf_insn> p;
      LD_IMM64(p, 2, static_cast<uint64_t>(c.a));
      p.push_back(MOV64_IMM(3, c.b));
      p.push_back(MOV64_IMM(0, 1));
      if (is32)
        p.push_back(reg ? JMP32_REG(c.op, 2, 3, 1) : JMP32_IMM(c.op, 2, c.b, 1));
      else
        p.push_back(reg ? JMP_REG(c.op, 2, 3, 1) : JMP_IMM(c.op, 2, c.b, 1));
      p.push_back(MOV64_IMM(0, 0));
      p.push_back(EXIT());
      CHECK(r0_of(p) == ((is32 ? c.taken32 : c.taken64) ? 1u : 0u));
    }
  }
}

TEST_CASE("unconditional jumps, short and long form", "[bpf][isa]") {
  CHECK(r0_of({MOV64_IMM(0, 1), JMP_A(1), MOV64_IMM(0, 2), EXIT()}) == 1);
  CHECK(r0_of({MOV64_IMM(0, 1), JMP32_A(1), MOV64_IMM(0, 2), EXIT()}) == 1);
  // A loop: r0 = sum of 1..10, with a backward conditional jump.
  CHECK(r0_of({MOV64_IMM(0, 0), MOV64_IMM(1, 10), ALU64_REG(BPF_ADD, 0, 1),
               ALU64_IMM(BPF_SUB, 1, 1), JMP_IMM(BPF_JNE, 1, 0, -3), EXIT()}) == 55);
}

TEST_CASE("loads and stores of every size on the stack", "[bpf][isa]") {
  std::vector<bpf_insn> p;
  LD_IMM64(p, 1, 0x8899aabbccddeeff);
  p.push_back(STX_MEM(BPF_DW, 10, 1, -8));
  p.push_back(LDX_MEM(BPF_B, 0, 10, -8));  // 0xff
  p.push_back(LDX_MEM(BPF_H, 2, 10, -6));  // 0xccdd
  p.push_back(ALU64_REG(BPF_ADD, 0, 2));
  p.push_back(LDX_MEM(BPF_W, 2, 10, -4));  // 0x8899aabb
  p.push_back(ALU64_REG(BPF_ADD, 0, 2));
  p.push_back(ST_MEM(BPF_W, 10, -16, -1));
  p.push_back(ST_MEM(BPF_H, 10, -12, 0x1234));
  p.push_back(ST_MEM(BPF_B, 10, -10, 0x56));
  p.push_back(LDX_MEM(BPF_DW, 2, 10, -16));  // fp-9 is still zero
  p.push_back(ALU64_REG(BPF_ADD, 0, 2));
  p.push_back(EXIT());
  CHECK(r0_of(p) == 0xff + 0xccdd + 0x8899aabbu + 0x00561234ffffffffu);

  std::vector<bpf_insn> q;
  q.push_back(ST_MEM(BPF_DW, 10, -8, -2));
  q.push_back(LDX_MEMSX(BPF_B, 0, 10, -8));
  q.push_back(LDX_MEMSX(BPF_H, 1, 10, -8));
  q.push_back(JMP_REG(BPF_JNE, 0, 1, 2));
  q.push_back(LDX_MEMSX(BPF_W, 0, 10, -8));
  q.push_back(EXIT());
  q.push_back(MOV64_IMM(0, 0));
  q.push_back(EXIT());
  CHECK(r0_of(q) == static_cast<uint64_t>(-2));
}

TEST_CASE("atomics on the stack", "[bpf][isa]") {
  // *(fp-8) = 10; then the op with r1 = 3 (r0 = 10 for cmpxchg); returns
  // (memory after) * 1000 + r1 after (the fetched value) -- or r0 for cmpxchg.
  auto run = [](uint8_t size, int32_t op, int64_t r0_in) {
    std::vector<bpf_insn> p = {ST_MEM(BPF_DW, 10, -8, 10),
                               MOV64_IMM(1, 3),
                               MOV64_IMM(0, static_cast<int32_t>(r0_in)),
                               ATOMIC_OP(size, op, 10, 1, -8),
                               LDX_MEM(BPF_DW, 2, 10, -8),
                               ALU64_IMM(BPF_MUL, 2, 1000)};
    p.push_back(op == BPF_CMPXCHG ? ALU64_REG(BPF_ADD, 2, 0) : ALU64_REG(BPF_ADD, 2, 1));
    p.push_back(MOV64_REG(0, 2));
    p.push_back(EXIT());
    return r0_of(p);
  };
  for (uint8_t size : {BPF_W, BPF_DW}) {
    CAPTURE(size);
    CHECK(run(size, BPF_ADD, 0) == 13003);
    CHECK(run(size, BPF_ADD | BPF_FETCH, 0) == 13010);
    CHECK(run(size, BPF_AND | BPF_FETCH, 0) == 2010);
    CHECK(run(size, BPF_OR | BPF_FETCH, 0) == 11010);
    CHECK(run(size, BPF_XOR | BPF_FETCH, 0) == 9010);
    CHECK(run(size, BPF_XCHG, 0) == 3010);
    CHECK(run(size, BPF_CMPXCHG, 10) == 3010);  // matched: stored, r0 = old
    CHECK(run(size, BPF_CMPXCHG, 4) == 10010);  // no match: kept, r0 = old
  }
}

TEST_CASE("bpf-to-bpf calls: arguments, result, callee-saved registers", "[bpf][isa]") {
  // main: r6 = 100; *(fp-8) = 7; r1 = fp-8; r2 = 5; call f; r0 += r6; exit
  // f:    r6 = 1; r0 = *(r1) (the caller's stack); *(fp-8) = r2 (own frame);
  //       r0 += *(fp-8); exit
  const std::vector<bpf_insn> p = {
      MOV64_IMM(6, 100), ST_MEM(BPF_DW, 10, -8, 7), MOV64_REG(1, 10), ALU64_IMM(BPF_ADD, 1, -8),
      MOV64_IMM(2, 5), CALL_REL(2), ALU64_REG(BPF_ADD, 0, 6), EXIT(),
      // f, at 8
      MOV64_IMM(6, 1), LDX_MEM(BPF_DW, 0, 1, 0), STX_MEM(BPF_DW, 10, 2, -8),
      LDX_MEM(BPF_DW, 3, 10, -8), ALU64_REG(BPF_ADD, 0, 3), EXIT()};
  CHECK(r0_of(p) == 112);
}

TEST_CASE("calls eight frames deep run", "[bpf][isa]") {
  // Seven functions each add 1 and call the next; the last returns 1.
  std::vector<bpf_insn> p;
  for (int f = 0; f < 7; ++f) {
    p.push_back(CALL_REL(2));
    p.push_back(ALU64_IMM(BPF_ADD, 0, 1));
    p.push_back(EXIT());
  }
  p.push_back(MOV64_IMM(0, 1));
  p.push_back(EXIT());
  CHECK(r0_of(p) == 8);
}

TEST_CASE("the stack is zero at the start of every run", "[bpf][isa]") {
  Loaded l = load({LDX_MEM(BPF_DW, 0, 10, -8), ST_MEM(BPF_DW, 10, -8, 42), EXIT()});
  REQUIRE(l.err == 0);
  Vm vm;
  CHECK(vm.run(l.prog, {}).r0 == 0);
  CHECK(vm.run(l.prog, {}).r0 == 0);
}
