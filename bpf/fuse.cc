#include "bpf/fuse.h"

#include <cstddef>

namespace sockshim::bpf {

using namespace op;

namespace {

bool is_jmp_k(uint8_t o, bool* is32, int* cond) {
  if (o >= JEQ64_K && o < JEQ64_K + 11 * 4 && (o - JEQ64_K) % 2 == 0) {
    *cond = (o - JEQ64_K) / 4;
    *is32 = (o - JEQ64_K) % 4 == 2;
    return true;
  }
  return false;
}

// LDXC_W rD = ctx[off]; if rD <cond> K goto t.
bool fuse_ctx_compare(Decoded& a, const Decoded& b) {
  bool is32;
  int cond;
  if (a.op != LDXC_W || !is_jmp_k(b.op, &is32, &cond) || b.dst != a.dst) return false;
  a.op = static_cast<uint8_t>(LDXCW_JEQ64 + cond * 2 + (is32 ? 1 : 0));
  a.imm = b.imm;
  return true;
}

// rD = rS; rD += K (; if rD > rX goto t).
bool fuse_mov_add(Decoded& a, const Decoded& b, const Decoded* c) {
  if (a.op != MOV64_X || b.op != ADD64_K || b.dst != a.dst) return false;
  a.imm = b.imm;
  a.op = c && c->op == JGT64_X && c->dst == a.dst ? MOVADD_JGT : MOVADD;
  return true;
}

// rD = V (lddw); if rX ==/!= rD goto t.
bool fuse_lddw_compare(Decoded& a, const Decoded& c) {
  if (a.op != LDDW || (c.op != JEQ64_X && c.op != JNE64_X)) return false;
  uint8_t other;
  if (c.src == a.dst)
    other = c.dst;
  else if (c.dst == a.dst)
    other = c.src;
  else
    return false;
  a.op = c.op == JEQ64_X ? LDDW_JEQ : LDDW_JNE;
  a.src = other;
  return true;
}

// r0 = K; exit.
bool fuse_mov_exit(Decoded& a, const Decoded& b) {
  if (b.op != EXIT || a.dst != 0 || (a.op != MOV64_K && a.op != MOV32_K)) return false;
  if (a.op == MOV32_K) a.imm = static_cast<int64_t>(static_cast<uint32_t>(a.imm));
  a.op = MOV_EXIT;
  return true;
}

}  // namespace

void fuse_sequences(std::vector<Decoded>& code) {
  const size_t n = code.size();
  for (size_t i = 0; i + 1 < n; ++i) {
    Decoded& a = code[i];
    const Decoded& b = code[i + 1];
    if (fuse_ctx_compare(a, b) || fuse_mov_add(a, b, i + 2 < n ? &code[i + 2] : nullptr) ||
        fuse_mov_exit(a, b))
      continue;
    if (a.op == LDDW && i + 2 < n) fuse_lddw_compare(a, code[i + 2]);
  }
}

}  // namespace sockshim::bpf
