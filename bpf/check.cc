#include "bpf/check.h"

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <vector>

#include "bpf/fuse.h"

namespace sockshim::bpf {

using namespace op;

namespace {

constexpr uint8_t kFp = BPF_REG_10;

// 0, 1, 2, 3 for BPF_B, BPF_H, BPF_W, BPF_DW (encoded 0x10, 0x08, 0x00, 0x18).
int size_index(uint8_t code) {
  static constexpr uint8_t kIndex[] = {2, 1, 0, 3};
  return kIndex[insn_size(code) >> 3];
}

class Checker {
 public:
  Checker(InsnSpan insns, const LoadOptions& opts, LoadedProgram* out, std::string* log)
      : in_(insns), opts_(opts), out_(out), log_(log) {}

  int run();

 private:
  int fail(uint32_t i, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
  int too_deep(uint32_t fn_start) {
    return fail(fn_start, "call stack too deep: more than %d frames reach this function",
                kMaxCallFrames);
  }
  int decode(uint32_t i, Decoded* d);
  int decode_alu(uint32_t i, const bpf_insn& x, Decoded* d);
  int decode_jmp(uint32_t i, const bpf_insn& x, Decoded* d);
  int decode_ldx(uint32_t i, const bpf_insn& x, Decoded* d);
  int decode_st(uint32_t i, const bpf_insn& x, Decoded* d);
  int decode_lddw(uint32_t i, const bpf_insn& x, Decoded* d);
  int check_target(uint32_t i, int64_t target);
  int check_functions();
  int call_height(size_t fn, int depth, std::vector<int>& height);
  size_t function_of(uint32_t i) const {
    return std::upper_bound(starts_.begin(), starts_.end(), i) - starts_.begin() - 1;
  }

  InsnSpan in_;
  const LoadOptions& opts_;
  LoadedProgram* out_;
  std::string* log_;
  std::vector<uint8_t> lddw_tail_;                    // slot i is the second half of an lddw
  std::vector<uint32_t> starts_;                      // first instruction of each function, sorted
  std::vector<std::pair<uint32_t, uint32_t>> calls_;  // local call sites: (insn, target)
  std::vector<std::pair<uint32_t, uint32_t>> jumps_;  // (insn, target)
};

int Checker::fail(uint32_t i, const char* fmt, ...) {
  char buf[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  char head[32];
  snprintf(head, sizeof head, "insn %u: ", i);
  *log_ = std::string(head) + buf;
  return -EINVAL;
}

int Checker::run() {
  const size_t n = in_.size();
  if (n == 0) return fail(0, "empty program");
  if (n > kMaxInsns)
    return fail(kMaxInsns, "program has %zu instructions, more than %u", n, kMaxInsns);
  lddw_tail_.assign(n, 0);
  starts_ = {0};
  out_->type = opts_.type;
  out_->layout = &context_layout(opts_.type);
  out_->sock = &sock_layout(opts_.type);
  out_->code.assign(n, Decoded{});
  out_->maps.clear();
  out_->static_regions.clear();
  out_->ctx_reads = 0;
  static_assert(sizeof(__sk_buff) <= 64 * 4 && sizeof(bpf_sock_ops) <= 64 * 4,
                "LoadedProgram::ctx_reads has a bit per context word");
  for (uint32_t i = 0; i < n; ++i) {
    if (int r = decode(i, &out_->code[i]); r < 0) return r;
    if (out_->code[i].op == LDDW) {
      lddw_tail_[i + 1] = 1;
      out_->code[i + 1] = Decoded{};
      out_->code[i + 1].op = LDDW_TAIL;
      ++i;
    }
  }
  std::sort(starts_.begin(), starts_.end());
  starts_.erase(std::unique(starts_.begin(), starts_.end()), starts_.end());
  for (auto [i, t] : jumps_) {
    if (function_of(i) != function_of(t))
      return fail(i, "jump from function at insn %u into function at insn %u",
                  starts_[function_of(i)], starts_[function_of(t)]);
  }
  if (int r = check_functions(); r < 0) return r;
  fuse_sequences(out_->code);
  std::sort(out_->maps.begin(), out_->maps.end());
  out_->maps.erase(std::unique(out_->maps.begin(), out_->maps.end()), out_->maps.end());
  return 0;
}

int Checker::check_target(uint32_t i, int64_t target) {
  if (target < 0 || target >= static_cast<int64_t>(in_.size()))
    return fail(i, "jump out of range to insn %lld (program has %zu instructions)",
                static_cast<long long>(target), in_.size());
  // A backward target inside an lddw is known now; a forward one is checked
  // once every instruction is decoded, in check_functions().
  return 0;
}

int Checker::decode(uint32_t i, Decoded* d) {
  const bpf_insn& x = in_[i];
  d->dst = x.dst_reg;
  d->src = x.src_reg;
  d->off = x.off;
  d->imm = x.imm;
  if (x.dst_reg > kFp || x.src_reg > kFp)
    return fail(i, "invalid register (dst r%u, src r%u)", x.dst_reg, x.src_reg);
  switch (insn_class(x.code)) {
    case BPF_ALU:
    case BPF_ALU64:
      return decode_alu(i, x, d);
    case BPF_JMP:
    case BPF_JMP32:
      return decode_jmp(i, x, d);
    case BPF_LDX:
      return decode_ldx(i, x, d);
    case BPF_ST:
    case BPF_STX:
      return decode_st(i, x, d);
    case BPF_LD:
      return decode_lddw(i, x, d);
  }
  return fail(i, "unknown opcode %#04x", x.code);
}

int Checker::decode_alu(uint32_t i, const bpf_insn& x, Decoded* d) {
  const bool is64 = insn_class(x.code) == BPF_ALU64;
  const bool reg = insn_src(x.code) == BPF_X;
  const uint8_t op = insn_op(x.code);
  if (op > BPF_END) return fail(i, "unknown opcode %#04x", x.code);
  if (x.dst_reg == kFp) return fail(i, "frame pointer r10 is read only");
  if (op == BPF_NEG) {
    if (reg || x.src_reg || x.off || x.imm) return fail(i, "BPF_NEG uses reserved fields");
    d->op = is64 ? NEG64 : NEG32;
    return 0;
  }
  if (op == BPF_END) {
    if (x.src_reg || x.off) return fail(i, "BPF_END uses reserved fields");
    if (x.imm != 16 && x.imm != 32 && x.imm != 64)
      return fail(i, "invalid BPF_END width %d", x.imm);
    const int w = x.imm == 16 ? 0 : x.imm == 32 ? 1 : 2;
    if (is64) {
      if (reg) return fail(i, "unknown opcode %#04x", x.code);
      d->op = static_cast<uint8_t>(BSWAP16 + w);
    } else {
      d->op = static_cast<uint8_t>((reg ? BE16 : LE16) + w);
    }
    return 0;
  }
  if (reg) {
    if (x.imm) return fail(i, "BPF_ALU uses reserved fields (imm %d)", x.imm);
  } else if (x.src_reg) {
    return fail(i, "BPF_ALU uses reserved fields (src r%u)", x.src_reg);
  }
  int base;
  switch (op) {
    case BPF_ADD:
      base = ADD64_K;
      break;
    case BPF_SUB:
      base = SUB64_K;
      break;
    case BPF_MUL:
      base = MUL64_K;
      break;
    case BPF_DIV:
      base = x.off == 1 ? SDIV64_K : DIV64_K;
      break;
    case BPF_MOD:
      base = x.off == 1 ? SMOD64_K : MOD64_K;
      break;
    case BPF_OR:
      base = OR64_K;
      break;
    case BPF_AND:
      base = AND64_K;
      break;
    case BPF_LSH:
      base = LSH64_K;
      break;
    case BPF_RSH:
      base = RSH64_K;
      break;
    case BPF_ARSH:
      base = ARSH64_K;
      break;
    case BPF_XOR:
      base = XOR64_K;
      break;
    case BPF_MOV:
      base = MOV64_K;
      break;
    default:
      return fail(i, "unknown opcode %#04x", x.code);
  }
  // off selects the signed division (1) or the sign-extending move (8/16/32).
  if (op == BPF_MOV && x.off) {
    if (!reg || !(x.off == 8 || x.off == 16 || (is64 && x.off == 32)))
      return fail(i, "invalid BPF_MOV offset %d", x.off);
    d->op = is64 ? (x.off == 8    ? MOVSX64_8
                    : x.off == 16 ? MOVSX64_16
                                  : MOVSX64_32)
                 : (x.off == 8 ? MOVSX32_8 : MOVSX32_16);
    return 0;
  }
  if (x.off && !((op == BPF_DIV || op == BPF_MOD) && x.off == 1))
    return fail(i, "BPF_ALU uses reserved fields (off %d)", x.off);
  if (!reg && (op == BPF_DIV || op == BPF_MOD) && x.imm == 0) return fail(i, "division by zero");
  if (!reg && (op == BPF_LSH || op == BPF_RSH || op == BPF_ARSH) &&
      (x.imm < 0 || x.imm >= (is64 ? 64 : 32)))
    return fail(i, "invalid shift %d", x.imm);
  d->op = static_cast<uint8_t>(base + (is64 ? 0 : 2) + (reg ? 1 : 0));
  d->off = 0;
  return 0;
}

int Checker::decode_jmp(uint32_t i, const bpf_insn& x, Decoded* d) {
  const bool is32 = insn_class(x.code) == BPF_JMP32;
  const bool reg = insn_src(x.code) == BPF_X;
  const uint8_t op = insn_op(x.code);
  switch (op) {
    case BPF_JA: {
      if (reg || x.src_reg || x.dst_reg || (is32 ? x.off != 0 : x.imm != 0))
        return fail(i, "BPF_JA uses reserved fields");
      const int64_t t = int64_t{i} + 1 + (is32 ? x.imm : x.off);
      if (int r = check_target(i, t); r < 0) return r;
      d->op = JA;
      d->off = static_cast<int32_t>(t);
      jumps_.emplace_back(i, static_cast<uint32_t>(t));
      return 0;
    }
    case BPF_CALL: {
      if (is32 || reg || x.dst_reg || x.off) return fail(i, "BPF_CALL uses reserved fields");
      if (x.src_reg == BPF_PSEUDO_CALL) {
        const int64_t t = int64_t{i} + 1 + x.imm;
        if (int r = check_target(i, t); r < 0) return r;
        d->op = CALL_LOCAL;
        d->off = static_cast<int32_t>(t);
        starts_.push_back(static_cast<uint32_t>(t));
        calls_.emplace_back(i, static_cast<uint32_t>(t));
        return 0;
      }
      if (x.src_reg == BPF_PSEUDO_KFUNC_CALL)
        return fail(i, "kernel function calls are not supported");
      if (x.src_reg != 0) return fail(i, "BPF_CALL uses reserved fields");
      const char* name = helper_name(x.imm);
      if (!name || x.imm == BPF_FUNC_unspec) return fail(i, "invalid func unknown#%d", x.imm);
      if (!helper_allowed(opts_.type, x.imm))
        return fail(i, "program of type %s may not call helper bpf_%s#%d",
                    prog_type_name(opts_.type), name, x.imm);
      if (!opts_.helpers || !opts_.helpers->fn[x.imm])
        return fail(i, "helper bpf_%s#%d is not supported", name, x.imm);
      d->op = CALL_HELPER;
      d->fn = opts_.helpers->fn[x.imm];
      return 0;
    }
    case BPF_EXIT:
      if (is32 || reg || x.src_reg || x.dst_reg || x.off || x.imm)
        return fail(i, "BPF_EXIT uses reserved fields");
      d->op = EXIT;
      return 0;
  }
  int base;
  switch (op) {
    case BPF_JEQ:
      base = JEQ64_K;
      break;
    case BPF_JGT:
      base = JGT64_K;
      break;
    case BPF_JGE:
      base = JGE64_K;
      break;
    case BPF_JSET:
      base = JSET64_K;
      break;
    case BPF_JNE:
      base = JNE64_K;
      break;
    case BPF_JSGT:
      base = JSGT64_K;
      break;
    case BPF_JSGE:
      base = JSGE64_K;
      break;
    case BPF_JLT:
      base = JLT64_K;
      break;
    case BPF_JLE:
      base = JLE64_K;
      break;
    case BPF_JSLT:
      base = JSLT64_K;
      break;
    case BPF_JSLE:
      base = JSLE64_K;
      break;
    default:
      return fail(i, "unknown opcode %#04x", x.code);
  }
  if (!reg && x.src_reg) return fail(i, "BPF_JMP uses reserved fields (src r%u)", x.src_reg);
  if (reg && x.imm) return fail(i, "BPF_JMP uses reserved fields (imm %d)", x.imm);
  const int64_t t = int64_t{i} + 1 + x.off;
  if (int r = check_target(i, t); r < 0) return r;
  d->op = static_cast<uint8_t>(base + (is32 ? 2 : 0) + (reg ? 1 : 0));
  d->off = static_cast<int32_t>(t);
  jumps_.emplace_back(i, static_cast<uint32_t>(t));
  return 0;
}

int Checker::decode_ldx(uint32_t i, const bpf_insn& x, Decoded* d) {
  const uint8_t mode = insn_mode(x.code);
  const int k = size_index(x.code);
  if (x.imm) return fail(i, "BPF_LDX uses reserved fields");
  if (x.dst_reg == kFp) return fail(i, "frame pointer r10 is read only");
  if (mode == BPF_MEM) {
    d->op = static_cast<uint8_t>(LDX_B + k);
  } else if (mode == BPF_MEMSX && k < 3) {
    d->op = static_cast<uint8_t>(LDXSX_B + k);
  } else {
    return fail(i, "unknown opcode %#04x", x.code);
  }
  // The answer for a source register holding the context pointer (CtxLoad).
  const ContextLayout& ctx = context_layout(opts_.type);
  const auto off = static_cast<uint32_t>(x.off);
  if (x.off >= 0 && off < ctx.size) {
    const uint8_t slot = ctx.bytes[off].slot;
    if (!ctx.allows(off, 1u << k, false))
      d->aux = kCtxDenied;
    else
      d->aux = slot ? static_cast<uint8_t>(kCtxSlot + slot - 1) : uint8_t{kCtxPlain};
    if (d->aux == kCtxPlain)
      for (uint32_t w = off / 4; w <= (off + (1u << k) - 1) / 4; ++w) out_->ctx_reads |= 1ull << w;
    if (d->aux >= kCtxPlain && mode == BPF_MEM) {
      d->imm = d->op;
      d->op = static_cast<uint8_t>(d->aux == kCtxPlain ? LDXC_B + k : LDXC_SLOT);
    }
  }
  return 0;
}

int Checker::decode_st(uint32_t i, const bpf_insn& x, Decoded* d) {
  const bool stx = insn_class(x.code) == BPF_STX;
  const uint8_t mode = insn_mode(x.code);
  const int k = size_index(x.code);
  if (stx && mode == BPF_ATOMIC) {
    if (k < 2) return fail(i, "invalid atomic operand size");
    switch (x.imm) {
      case BPF_ADD:
      case BPF_AND:
      case BPF_OR:
      case BPF_XOR:
      case BPF_ADD | BPF_FETCH:
      case BPF_AND | BPF_FETCH:
      case BPF_OR | BPF_FETCH:
      case BPF_XOR | BPF_FETCH:
      case BPF_XCHG:
      case BPF_CMPXCHG:
        break;
      default:
        return fail(i, "BPF_ATOMIC uses invalid atomic opcode %#04x", x.imm);
    }
    if ((x.imm & BPF_FETCH) && x.imm != BPF_CMPXCHG && x.src_reg == kFp)
      return fail(i, "frame pointer r10 is read only");
    d->op = k == 2 ? ATOMIC_W : ATOMIC_DW;
    d->aux = static_cast<uint8_t>(x.imm);
    d->imm = 0;
    return 0;
  }
  if (mode != BPF_MEM) return fail(i, "unknown opcode %#04x", x.code);
  if (stx) {
    if (x.imm) return fail(i, "BPF_STX uses reserved fields");
    d->op = static_cast<uint8_t>(STX_B + k);
  } else {
    if (x.src_reg) return fail(i, "BPF_ST uses reserved fields");
    d->op = static_cast<uint8_t>(ST_B + k);
  }
  return 0;
}

int Checker::decode_lddw(uint32_t i, const bpf_insn& x, Decoded* d) {
  if (x.code != (BPF_LD | BPF_IMM | BPF_DW)) {
    const uint8_t mode = insn_mode(x.code);
    if (mode == BPF_ABS || mode == BPF_IND) return fail(i, "BPF_LD_[ABS|IND] is not supported");
    return fail(i, "unknown opcode %#04x", x.code);
  }
  if (i + 1 >= in_.size()) return fail(i, "invalid BPF_LD_IMM insn: no second slot");
  const bpf_insn& y = in_[i + 1];
  if (y.code || y.dst_reg || y.src_reg || y.off)
    return fail(i, "invalid BPF_LD_IMM insn: second slot is not empty");
  if (x.off) return fail(i, "invalid BPF_LD_IMM insn: off %d", x.off);
  if (x.dst_reg == kFp) return fail(i, "frame pointer r10 is read only");
  d->op = LDDW;
  d->src = 0;
  const uint64_t lo = static_cast<uint32_t>(x.imm), hi = static_cast<uint32_t>(y.imm);
  switch (x.src_reg) {
    case 0:
      d->imm = static_cast<int64_t>(hi << 32 | lo);
      return 0;
    case BPF_PSEUDO_MAP_FD:
    case BPF_PSEUDO_MAP_IDX:
    case BPF_PSEUDO_MAP_VALUE:
    case BPF_PSEUDO_MAP_IDX_VALUE:
      break;
    case BPF_PSEUDO_BTF_ID:
      return fail(i, "BTF object references are not supported");
    case BPF_PSEUDO_FUNC:
      return fail(i, "callback function references are not supported");
    default:
      return fail(i, "unrecognized bpf_ld_imm64 insn (src %u)", x.src_reg);
  }
  const bool value = x.src_reg == BPF_PSEUDO_MAP_VALUE || x.src_reg == BPF_PSEUDO_MAP_IDX_VALUE;
  if (!value && y.imm) return fail(i, "invalid BPF_LD_IMM insn: map reference with offset");
  if (!opts_.resolve_map) return fail(i, "map references are not supported here");
  MapRef ref;
  if (int r = opts_.resolve_map(x.src_reg, x.imm, static_cast<uint32_t>(y.imm), &ref); r < 0) {
    fail(i, "map %s %d does not resolve: %s",
         x.src_reg == BPF_PSEUDO_MAP_FD || x.src_reg == BPF_PSEUDO_MAP_VALUE ? "fd" : "index",
         x.imm, strerror(-r));
    return r;
  }
  d->imm = static_cast<int64_t>(ref.value);
  if (value) {
    if (ref.region_len)
      out_->static_regions.push_back({ref.region_start, ref.region_len, ref.writable});
  } else {
    out_->maps.push_back(ref.value);
  }
  return 0;
}

int Checker::check_functions() {
  const size_t n = in_.size();
  for (auto [i, t] : jumps_)
    if (lddw_tail_[t]) return fail(i, "jump into the middle of ldimm64 insn %u", t - 1);
  for (auto [i, t] : calls_)
    if (lddw_tail_[t]) return fail(i, "call into the middle of ldimm64 insn %u", t - 1);
  for (size_t f = 0; f < starts_.size(); ++f) {
    const uint32_t end = f + 1 < starts_.size() ? starts_[f + 1] : static_cast<uint32_t>(n);
    const uint8_t last = out_->code[end - 1].op;
    if (last != EXIT && last != JA)
      return fail(end - 1, "last insn of the function at insn %u is not an exit or jmp",
                  starts_[f]);
  }
  std::vector<int> height(starts_.size(), 0);  // frames a call to it needs; -1: on the path
  const int frames = call_height(0, 1, height);
  return frames < 0 ? frames : 0;
}

// The deepest chain of frames starting at function `fn` (1 for a function
// that calls none), memoized; a call back into a function on the current path
// is recursion, which the kernel rejects too. `depth` is the frame fn runs in
// on the current path, which bounds the recursion here.
int Checker::call_height(size_t fn, int depth, std::vector<int>& height) {
  if (height[fn] > 0) {
    if (depth + height[fn] - 1 > kMaxCallFrames) return too_deep(starts_[fn]);
    return height[fn];
  }
  if (depth > kMaxCallFrames) return too_deep(starts_[fn]);
  height[fn] = -1;
  int h = 1;
  const auto first =
      std::lower_bound(calls_.begin(), calls_.end(), std::pair<uint32_t, uint32_t>{starts_[fn], 0});
  for (auto it = first; it != calls_.end() && function_of(it->first) == fn; ++it) {
    const size_t callee = function_of(it->second);
    if (height[callee] < 0)
      return fail(it->first, "recursive call to the function at insn %u", it->second);
    const int r = call_height(callee, depth + 1, height);
    if (r < 0) return r;
    h = std::max(h, r + 1);
  }
  height[fn] = h;
  return h;
}

}  // namespace

int load_program(InsnSpan insns, const LoadOptions& opts, LoadedProgram* out, std::string* log) {
  return Checker(insns, opts, out, log).run();
}

}  // namespace sockshim::bpf
