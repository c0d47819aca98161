// A checked program in the form the VM runs: one decoded entry per
// instruction slot, with every variant an opcode byte, `off` or `imm` can
// select resolved into its own operation, jump offsets turned into absolute
// targets, map references and helper functions resolved. check.h builds it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "bpf/context.h"
#include "bpf/helpers.h"

namespace sockshim::bpf {

class Vm;

// A helper: (vm, r1 .. r5) -> r0. It reaches the program's memory through
// vm.mem() and registers memory it hands out with vm.add_region().
using HelperFn = uint64_t (*)(Vm& vm, uint64_t r1, uint64_t r2, uint64_t r3, uint64_t r4,
                              uint64_t r5);

// The helpers a caller implements, by BPF_FUNC_* id.
struct HelperTable {
  std::array<HelperFn, kMaxHelperId> fn{};
};

#define SOCKSHIM_BPF_ALU_OPS(X) \
  X(ADD)                        \
  X(SUB) X(MUL) X(DIV) X(SDIV) X(MOD) X(SMOD) X(OR) X(AND) X(LSH) X(RSH) X(ARSH) X(XOR) X(MOV)
#define SOCKSHIM_BPF_JMP_OPS(X) \
  X(JEQ) X(JGT) X(JGE) X(JSET) X(JNE) X(JSGT) X(JSGE) X(JLT) X(JLE) X(JSLT) X(JSLE)

// The other operations, in enum order after the ALU and JMP ones. ATOMIC_*:
// aux is the BPF_ADD / ... / BPF_CMPXCHG selector; LDDW_TAIL: the second slot
// of an lddw, never reached. LDXC_*: a BPF_MEM load whose offset and size the
// context allows (plain bytes, or a pointer slot): when the source register
// holds the context pointer it is one host load, otherwise it runs as the
// LDX_* op in `imm`. The VM's dispatch table follows this order.
// clang-format off
#define SOCKSHIM_BPF_OTHER_OPS(X) \
  X(NEG64) X(NEG32) X(MOVSX64_8) X(MOVSX64_16) X(MOVSX64_32) X(MOVSX32_8) \
  X(MOVSX32_16) X(LE16) X(LE32) X(LE64) X(BE16) X(BE32) X(BE64) X(BSWAP16) \
  X(BSWAP32) X(BSWAP64) X(LDDW) X(LDX_B) X(LDX_H) X(LDX_W) X(LDX_DW) \
  X(LDXSX_B) X(LDXSX_H) X(LDXSX_W) X(LDXC_B) X(LDXC_H) X(LDXC_W) X(LDXC_DW) \
  X(LDXC_SLOT) X(ST_B) X(ST_H) X(ST_W) X(ST_DW) X(STX_B) \
  X(STX_H) X(STX_W) X(STX_DW) X(ATOMIC_W) X(ATOMIC_DW) X(JA) X(CALL_HELPER) \
  X(CALL_LOCAL) X(EXIT) X(LDDW_TAIL)
// clang-format on

// Fused operations (bpf/fuse.h): one decoded entry standing for a run of two
// or three instructions compilers emit together. It replaces the run's first
// slot; the others keep their decoding (a jump landing on one runs it alone,
// and the fused operation reads its jump target there). LDXCW_J*: LDXC_W,
// then a compare of its register with an immediate (imm) and a jump; when
// the source register is not the context pointer it runs as LDX_W and goes
// on to the next slot. MOVADD: mov64 reg, then add64 imm (imm) to the same
// register; MOVADD_JGT: the same, then a jgt64 of that register against a
// register. LDDW_JEQ/JNE: an lddw, then a jeq/jne64 of it against register
// src. MOV_EXIT: mov r0, imm (imm: the value r0 gets), then exit.
#define SOCKSHIM_BPF_FUSED_OPS(X) X(MOVADD) X(MOVADD_JGT) X(LDDW_JEQ) X(LDDW_JNE) X(MOV_EXIT)

// Kept in their own namespace: the names are short and common.
namespace op {
enum Op : uint8_t {
#define SOCKSHIM_OP4(n) n##64_K, n##64_X, n##32_K, n##32_X,
#define SOCKSHIM_OP1(n) n,
#define SOCKSHIM_OPLJ(n) LDXCW_##n##64, LDXCW_##n##32,
  SOCKSHIM_BPF_ALU_OPS(SOCKSHIM_OP4) SOCKSHIM_BPF_JMP_OPS(SOCKSHIM_OP4)
      SOCKSHIM_BPF_OTHER_OPS(SOCKSHIM_OP1) SOCKSHIM_BPF_JMP_OPS(SOCKSHIM_OPLJ)
          SOCKSHIM_BPF_FUSED_OPS(SOCKSHIM_OP1)
#undef SOCKSHIM_OP4
#undef SOCKSHIM_OP1
#undef SOCKSHIM_OPLJ
              kOpCount
};
}  // namespace op

// Decoded::aux of a load (LDX_*, LDXSX_*): what the access is when its source
// register holds the context pointer, as it usually does (r1 or a copy). The
// VM compares the register with the context address at run time and takes
// this answer only then, so nothing rests on the check guessing provenance.
enum CtxLoad : uint8_t {
  kCtxOutside = 0,  // off does not fall in the context: the general checks
  kCtxDenied = 1,   // the layout refuses this offset and size: a ctx_load fault
  kCtxPlain = 2,    // the bytes of the struct
  kCtxSlot = 3,     // kCtxSlot + n: RunInput::ctx_ptrs[n]
};

struct Decoded {
  uint8_t op;
  uint8_t dst;
  uint8_t src;
  uint8_t aux;  // atomics: the operation; loads: a CtxLoad
  int32_t off;  // memory offset, or the absolute target of a jump or local call
  union {
    int64_t imm;  // sign-extended immediate; lddw: the full 64-bit value
    HelperFn fn;
  };
};
static_assert(sizeof(Decoded) == 16);

// Memory the program references itself (lddw of BPF_PSEUDO_MAP_VALUE: global
// data), accessible in every run.
struct StaticRegion {
  uint64_t start;
  uint64_t len;
  bool writable;
};

struct LoadedProgram {
  ProgType type = ProgType::sk_msg;
  const ContextLayout* layout = nullptr;  // context_layout(type)
  const ContextLayout* sock = nullptr;    // sock_layout(type)
  // Bit n: a load through the context pointer itself reads plain bytes of the
  // context's 4-byte word n (RunInput::complete says why it matters).
  uint64_t ctx_reads = 0;
  std::vector<Decoded> code;
  std::vector<uint64_t> maps;  // map handles its lddw's resolved to, sorted
  std::vector<StaticRegion> static_regions;
};

}  // namespace sockshim::bpf
