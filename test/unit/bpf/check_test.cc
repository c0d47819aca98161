// The load-time check: one rejected program per kind of error, each message
// naming the instruction, as a libbpf user reads it in the verifier log.
#include <catch2/catch.hpp>

#include <cerrno>
#include <string>
#include <vector>

#include "bpf_asm.h"

using namespace bpf_asm;
using namespace sockshim::bpf;

namespace {

uint64_t return_one(Vm&, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t) {
  return 1;
}

HelperTable table_with(std::initializer_list<int> ids) {
  HelperTable t;
  for (int id : ids) t.fn[id] = return_one;
  return t;
}

void rejects(const std::vector<bpf_insn>& p, const std::string& at, const std::string& what,
             ProgType type = ProgType::sk_msg, const HelperTable* helpers = nullptr,
             MapResolver resolver = {}, int err = -EINVAL) {
  Loaded l = load(p, type, helpers, std::move(resolver));
  INFO(l.log);
  CHECK(l.err == err);
  CHECK(l.log.rfind(at + ": ", 0) == 0);
  CHECK(l.log.find(what) != std::string::npos);
}

}  // namespace

TEST_CASE("check rejects malformed instructions", "[bpf][check]") {
  rejects({}, "insn 0", "empty program");
  rejects(std::vector<bpf_insn>(kMaxInsns + 1, EXIT()), "insn 1000000",
          "program has 1000001 instructions, more than 1000000");
  rejects({MOV64_IMM(0, 0), insn(BPF_ALU64 | 0xe0 | BPF_K, 0, 0, 0, 0), EXIT()}, "insn 1",
          "unknown opcode 0xe7");
  rejects({MOV64_IMM(0, 0), insn(BPF_JMP32 | BPF_CALL, 0, 0, 0, 1), EXIT()}, "insn 1",
          "BPF_CALL uses reserved fields");
  rejects({MOV64_IMM(11, 0), EXIT()}, "insn 0", "invalid register");
  rejects({MOV64_IMM(0, 0), MOV64_IMM(10, 0), EXIT()}, "insn 1", "frame pointer r10 is read only");
  rejects({LDX_MEM(BPF_DW, 10, 1, 0), EXIT()}, "insn 0", "frame pointer r10 is read only");
  rejects({MOV64_IMM(0, 1), ALU64_IMM(BPF_DIV, 0, 0), EXIT()}, "insn 1", "division by zero");
  rejects({MOV64_IMM(0, 1), ALU32_IMM(BPF_LSH, 0, 32), EXIT()}, "insn 1", "invalid shift 32");
  rejects({MOV64_IMM(0, 1), insn(BPF_ALU64 | BPF_ADD | BPF_K, 0, 3, 0, 1), EXIT()}, "insn 1",
          "reserved fields");
  rejects({MOV64_IMM(0, 1), ENDIAN(BPF_TO_BE, 0, 24), EXIT()}, "insn 1",
          "invalid BPF_END width 24");
  rejects({MOV64_IMM(0, 1), ALU32_REG_OFF(BPF_MOV, 0, 1, 32), EXIT()}, "insn 1",
          "invalid BPF_MOV offset 32");
  rejects({MOV64_IMM(0, 1), insn(BPF_LD | BPF_ABS | BPF_B, 0, 0, 0, 0), EXIT()}, "insn 1",
          "BPF_LD_[ABS|IND] is not supported");
  rejects({MOV64_IMM(0, 1), ATOMIC_OP(BPF_DW, BPF_SUB, 10, 1, -8), EXIT()}, "insn 1",
          "invalid atomic opcode");
  rejects({MOV64_IMM(0, 1), ATOMIC_OP(BPF_H, BPF_ADD, 10, 1, -8), EXIT()}, "insn 1",
          "invalid atomic operand size");
  rejects({MOV64_IMM(0, 1), insn(BPF_LDX | BPF_DW | BPF_MEMSX, 0, 10, -8, 0), EXIT()}, "insn 1",
          "unknown opcode");
}

TEST_CASE("check rejects reserved fields of every class", "[bpf][check]") {
  rejects({MOV64_IMM(0, 1), insn(BPF_ALU64 | BPF_NEG, 0, 0, 0, 1), EXIT()}, "insn 1",
          "BPF_NEG uses reserved fields");
  rejects({MOV64_IMM(0, 1), insn(BPF_ALU64 | BPF_ADD | BPF_X, 0, 1, 0, 5), EXIT()}, "insn 1",
          "BPF_ALU uses reserved fields (imm 5)");
  rejects({MOV64_IMM(0, 1), insn(BPF_ALU64 | BPF_ADD | BPF_X, 0, 1, 2, 0), EXIT()}, "insn 1",
          "BPF_ALU uses reserved fields (off 2)");
  rejects({MOV64_IMM(0, 1), insn(BPF_ALU | BPF_END | BPF_TO_LE, 0, 1, 0, 16), EXIT()}, "insn 1",
          "BPF_END uses reserved fields");
  rejects({MOV64_IMM(0, 1), insn(BPF_ALU64 | BPF_END | BPF_TO_BE, 0, 0, 0, 16), EXIT()}, "insn 1",
          "unknown opcode 0xdf");
  rejects({MOV64_IMM(0, 1), insn(BPF_JMP | BPF_JA, 0, 0, 0, 1), EXIT()}, "insn 1",
          "BPF_JA uses reserved fields");
  rejects({MOV64_IMM(0, 1), insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 2, 0, 1), EXIT()}, "insn 1",
          "BPF_JMP uses reserved fields (src r2)");
  rejects({MOV64_IMM(0, 1), insn(BPF_JMP | BPF_JEQ | BPF_X, 0, 2, 0, 1), EXIT()}, "insn 1",
          "BPF_JMP uses reserved fields (imm 1)");
  rejects({MOV64_IMM(0, 1), insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 1)}, "insn 1",
          "BPF_EXIT uses reserved fields");
  rejects({MOV64_IMM(0, 1), insn(BPF_LDX | BPF_W | BPF_MEM, 0, 10, -4, 1), EXIT()}, "insn 1",
          "BPF_LDX uses reserved fields");
  rejects({MOV64_IMM(0, 1), insn(BPF_STX | BPF_W | BPF_MEM, 10, 0, -4, 1), EXIT()}, "insn 1",
          "BPF_STX uses reserved fields");
  rejects({MOV64_IMM(0, 1), insn(BPF_ST | BPF_W | BPF_MEM, 10, 1, -4, 1), EXIT()}, "insn 1",
          "BPF_ST uses reserved fields");
  rejects({MOV64_IMM(0, 1), ATOMIC_OP(BPF_DW, BPF_XCHG, 10, 10, -8), EXIT()}, "insn 1",
          "frame pointer r10 is read only");
}

TEST_CASE("check rejects broken lddw", "[bpf][check]") {
  rejects({insn(BPF_LD | BPF_DW | BPF_IMM, 0, 9, 0, 1), insn(0, 0, 0, 0, 0), EXIT()}, "insn 0",
          "unrecognized bpf_ld_imm64 insn (src 9)");
  rejects({insn(BPF_LD | BPF_DW | BPF_IMM, 0, BPF_PSEUDO_FUNC, 0, 1), insn(0, 0, 0, 0, 0), EXIT()},
          "insn 0", "callback function references are not supported");
  rejects(
      {insn(BPF_LD | BPF_DW | BPF_IMM, 0, BPF_PSEUDO_MAP_FD, 0, 1), insn(0, 0, 0, 0, 4), EXIT()},
      "insn 0", "map reference with offset");
  rejects({insn(BPF_LD | BPF_DW | BPF_IMM, 0, 0, 3, 1), insn(0, 0, 0, 0, 0), EXIT()}, "insn 0",
          "invalid BPF_LD_IMM insn: off 3");
  rejects({MOV64_IMM(0, 1), insn(BPF_LD | BPF_DW | BPF_IMM, 0, 0, 0, 1)}, "insn 1",
          "no second slot");
  rejects({insn(BPF_LD | BPF_DW | BPF_IMM, 0, 0, 0, 1), MOV64_IMM(0, 1), EXIT()}, "insn 0",
          "second slot is not empty");
  rejects(
      {insn(BPF_LD | BPF_DW | BPF_IMM, 0, BPF_PSEUDO_BTF_ID, 0, 1), insn(0, 0, 0, 0, 0), EXIT()},
      "insn 0", "BTF object references are not supported");
}

TEST_CASE("check rejects jumps out of range or into an lddw", "[bpf][check]") {
  rejects({MOV64_IMM(0, 1), JMP_IMM(BPF_JEQ, 0, 0, 5), EXIT()}, "insn 1", "jump out of range");
  rejects({MOV64_IMM(0, 1), JMP_A(-3), EXIT()}, "insn 1", "jump out of range");
  std::vector<bpf_insn> p = {MOV64_IMM(0, 1), JMP_IMM(BPF_JEQ, 0, 0, 1)};
  LD_IMM64(p, 1, 7);
  p.push_back(EXIT());
  rejects(p, "insn 1", "jump into the middle of ldimm64 insn 2");
  std::vector<bpf_insn> q = {CALL_REL(2), EXIT()};
  LD_IMM64(q, 0, 7);
  q.push_back(EXIT());
  rejects(q, "insn 0", "call into the middle of ldimm64 insn 2");
}

TEST_CASE("check requires every function to end in exit or jump", "[bpf][check]") {
  rejects({MOV64_IMM(0, 1)}, "insn 0", "is not an exit or jmp");
  rejects({MOV64_IMM(0, 1), JMP_IMM(BPF_JEQ, 0, 0, -2)}, "insn 1", "is not an exit or jmp");
  // main would fall through into the function called at 3.
  rejects({CALL_REL(2), MOV64_IMM(0, 1), MOV64_IMM(0, 2), MOV64_IMM(0, 3), EXIT()}, "insn 2",
          "is not an exit or jmp");
}

TEST_CASE("check rejects bad bpf-to-bpf calls", "[bpf][check]") {
  rejects({CALL_REL(1), EXIT(), JMP_A(-3), EXIT()}, "insn 2", "jump from function at insn 2");
  rejects({CALL_REL(1), EXIT(), CALL_REL(-1), EXIT()}, "insn 2", "recursive call");
  rejects({CALL_REL(1), EXIT(), CALL_REL(-3), EXIT()}, "insn 2", "recursive call");
  rejects({insn(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_KFUNC_CALL, 0, 5), EXIT()}, "insn 0",
          "kernel function calls are not supported");
  std::vector<bpf_insn> p;  // nine frames
  for (int f = 0; f < 8; ++f) {
    p.push_back(CALL_REL(1));
    p.push_back(EXIT());
  }
  p.push_back(EXIT());
  rejects(p, "insn 16", "call stack too deep");
}

TEST_CASE("check rejects helpers unknown, not allowed or not implemented", "[bpf][check]") {
  const HelperTable t = table_with({BPF_FUNC_map_lookup_elem, BPF_FUNC_sk_redirect_map});
  rejects({CALL_HELPER(9999), EXIT()}, "insn 0", "invalid func unknown#9999", ProgType::sk_msg, &t);
  rejects({MOV64_IMM(0, 0), CALL_HELPER(BPF_FUNC_sk_redirect_map), EXIT()}, "insn 1",
          "program of type sk_msg may not call helper bpf_sk_redirect_map#52", ProgType::sk_msg,
          &t);
  rejects({MOV64_IMM(0, 0), CALL_HELPER(BPF_FUNC_msg_apply_bytes), EXIT()}, "insn 1",
          "helper bpf_msg_apply_bytes#61 is not supported", ProgType::sk_msg, &t);
  // The same helper loads where the kernel allows it.
  CHECK(load({CALL_HELPER(BPF_FUNC_sk_redirect_map), EXIT()}, ProgType::sk_skb, &t).err == 0);
}

TEST_CASE("check resolves map references through the caller", "[bpf][check]") {
  std::vector<bpf_insn> p;
  LD_IMM64(p, 1, 7, BPF_PSEUDO_MAP_FD);
  p.push_back(MOV64_IMM(0, 0));
  p.push_back(EXIT());
  rejects(p, "insn 0", "map references are not supported here");
  rejects(
      p, "insn 0", "map fd 7 does not resolve: Bad file descriptor", ProgType::sk_msg, nullptr,
      [](uint8_t, int32_t, uint32_t, MapRef*) { return -EBADF; }, -EBADF);
  Loaded l =
      load(p, ProgType::sk_msg, nullptr, [](uint8_t pseudo, int32_t fd, uint32_t, MapRef* r) {
        r->value = pseudo == BPF_PSEUDO_MAP_FD && fd == 7 ? 0x7000 : 0;
        return 0;
      });
  REQUIRE(l.err == 0);
  CHECK(l.prog.maps == std::vector<uint64_t>{0x7000});
}
