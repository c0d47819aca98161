// Hand assembly for the VM tests, named like the kernel's filter.h macros.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <string>
#include <vector>

#include "bpf/check.h"
#include "bpf/insn.h"
#include "bpf/vm.h"

namespace bpf_asm {

constexpr bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

constexpr bpf_insn ALU64_IMM(uint8_t op, uint8_t dst, int32_t imm) {
  return insn(BPF_ALU64 | op | BPF_K, dst, 0, 0, imm);
}
constexpr bpf_insn ALU64_REG(uint8_t op, uint8_t dst, uint8_t src) {
  return insn(BPF_ALU64 | op | BPF_X, dst, src, 0, 0);
}
constexpr bpf_insn ALU32_IMM(uint8_t op, uint8_t dst, int32_t imm) {
  return insn(BPF_ALU | op | BPF_K, dst, 0, 0, imm);
}
constexpr bpf_insn ALU32_REG(uint8_t op, uint8_t dst, uint8_t src) {
  return insn(BPF_ALU | op | BPF_X, dst, src, 0, 0);
}
constexpr bpf_insn MOV64_IMM(uint8_t dst, int32_t imm) {
  return ALU64_IMM(BPF_MOV, dst, imm);
}
constexpr bpf_insn MOV64_REG(uint8_t dst, uint8_t src) {
  return ALU64_REG(BPF_MOV, dst, src);
}
constexpr bpf_insn MOV32_IMM(uint8_t dst, int32_t imm) {
  return ALU32_IMM(BPF_MOV, dst, imm);
}
// Signed division / modulo (off 1) and sign-extending moves (off 8, 16, 32): ISA v4.
constexpr bpf_insn ALU64_REG_OFF(uint8_t op, uint8_t dst, uint8_t src, int16_t off) {
  return insn(BPF_ALU64 | op | BPF_X, dst, src, off, 0);
}
constexpr bpf_insn ALU32_REG_OFF(uint8_t op, uint8_t dst, uint8_t src, int16_t off) {
  return insn(BPF_ALU | op | BPF_X, dst, src, off, 0);
}
constexpr bpf_insn ALU64_IMM_OFF(uint8_t op, uint8_t dst, int32_t imm, int16_t off) {
  return insn(BPF_ALU64 | op | BPF_K, dst, 0, off, imm);
}
constexpr bpf_insn ENDIAN(uint8_t src_bit, uint8_t dst, int32_t bits) {
  return insn(BPF_ALU | BPF_END | src_bit, dst, 0, 0, bits);
}
constexpr bpf_insn BSWAP(uint8_t dst, int32_t bits) {
  return insn(BPF_ALU64 | BPF_END | BPF_TO_LE, dst, 0, 0, bits);
}

// Two slots: dst = imm64, or a map reference with src = pseudo.
inline void LD_IMM64(std::vector<bpf_insn>& p, uint8_t dst, uint64_t v, uint8_t pseudo = 0) {
  p.push_back(insn(BPF_LD | BPF_DW | BPF_IMM, dst, pseudo, 0, static_cast<int32_t>(v)));
  p.push_back(insn(0, 0, 0, 0, static_cast<int32_t>(v >> 32)));
}

constexpr bpf_insn LDX_MEM(uint8_t size, uint8_t dst, uint8_t src, int16_t off) {
  return insn(BPF_LDX | size | BPF_MEM, dst, src, off, 0);
}
constexpr bpf_insn LDX_MEMSX(uint8_t size, uint8_t dst, uint8_t src, int16_t off) {
  return insn(BPF_LDX | size | BPF_MEMSX, dst, src, off, 0);
}
constexpr bpf_insn STX_MEM(uint8_t size, uint8_t dst, uint8_t src, int16_t off) {
  return insn(BPF_STX | size | BPF_MEM, dst, src, off, 0);
}
constexpr bpf_insn ST_MEM(uint8_t size, uint8_t dst, int16_t off, int32_t imm) {
  return insn(BPF_ST | size | BPF_MEM, dst, 0, off, imm);
}
constexpr bpf_insn ATOMIC_OP(uint8_t size, int32_t op, uint8_t dst, uint8_t src, int16_t off) {
  return insn(BPF_STX | size | BPF_ATOMIC, dst, src, off, op);
}

constexpr bpf_insn JMP_IMM(uint8_t op, uint8_t dst, int32_t imm, int16_t off) {
  return insn(BPF_JMP | op | BPF_K, dst, 0, off, imm);
}
constexpr bpf_insn JMP_REG(uint8_t op, uint8_t dst, uint8_t src, int16_t off) {
  return insn(BPF_JMP | op | BPF_X, dst, src, off, 0);
}
constexpr bpf_insn JMP32_IMM(uint8_t op, uint8_t dst, int32_t imm, int16_t off) {
  return insn(BPF_JMP32 | op | BPF_K, dst, 0, off, imm);
}
constexpr bpf_insn JMP32_REG(uint8_t op, uint8_t dst, uint8_t src, int16_t off) {
  return insn(BPF_JMP32 | op | BPF_X, dst, src, off, 0);
}
constexpr bpf_insn JMP_A(int16_t off) {
  return insn(BPF_JMP | BPF_JA, 0, 0, off, 0);
}
constexpr bpf_insn JMP32_A(int32_t imm) {
  return insn(BPF_JMP32 | BPF_JA, 0, 0, 0, imm);
}
constexpr bpf_insn CALL_HELPER(int32_t id) {
  return insn(BPF_JMP | BPF_CALL, 0, 0, 0, id);
}
constexpr bpf_insn CALL_REL(int32_t imm) {
  return insn(BPF_JMP | BPF_CALL, 0, BPF_PSEUDO_CALL, 0, imm);
}
constexpr bpf_insn EXIT() {
  return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

// Loads `p` as `type` with `helpers` (and an optional resolver); the test
// fails with the verifier log if that does not work.
struct Loaded {
  int err = 0;
  std::string log;
  sockshim::bpf::LoadedProgram prog;
};
inline Loaded load(const std::vector<bpf_insn>& p,
                   sockshim::bpf::ProgType type = sockshim::bpf::ProgType::sk_msg,
                   const sockshim::bpf::HelperTable* helpers = nullptr,
                   sockshim::bpf::MapResolver resolver = {}) {
  Loaded l;
  sockshim::bpf::LoadOptions o;
  o.type = type;
  o.helpers = helpers;
  o.resolve_map = std::move(resolver);
  l.err = sockshim::bpf::load_program(p, o, &l.prog, &l.log);
  return l;
}

}  // namespace bpf_asm
