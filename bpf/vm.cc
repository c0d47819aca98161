#include "bpf/vm.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace sockshim::bpf {

using namespace op;

static_assert(std::endian::native == std::endian::little,
              "BPF_END and the context byte order assume a little-endian host");

namespace {

// [a, a + len) inside [lo, hi), without overflow.
inline bool inside(uint64_t a, uint64_t len, uint64_t lo, uint64_t hi) {
  return a >= lo && a < hi && hi - a >= len;
}

// The signed forms: by zero as the unsigned ones; by -1 without the C
// overflow trap (the ISA wraps: INT_MIN / -1 is INT_MIN, INT_MIN % -1 is 0).
inline uint64_t sdiv64(uint64_t a, uint64_t b) {
  const auto x = static_cast<int64_t>(a), y = static_cast<int64_t>(b);
  if (y == 0) return 0;
  if (y == -1) return 0 - a;
  return static_cast<uint64_t>(x / y);
}
inline uint64_t smod64(uint64_t a, uint64_t b) {
  const auto x = static_cast<int64_t>(a), y = static_cast<int64_t>(b);
  if (y == 0) return a;
  if (y == -1) return 0;
  return static_cast<uint64_t>(x % y);
}
inline uint32_t sdiv32(uint32_t a, uint32_t b) {
  const auto x = static_cast<int32_t>(a), y = static_cast<int32_t>(b);
  if (y == 0) return 0;
  if (y == -1) return 0 - a;
  return static_cast<uint32_t>(x / y);
}
inline uint32_t smod32(uint32_t a, uint32_t b) {
  const auto x = static_cast<int32_t>(a), y = static_cast<int32_t>(b);
  if (y == 0) return a;
  if (y == -1) return 0;
  return static_cast<uint32_t>(x % y);
}

}  // namespace

const char* fault_kind_name(FaultKind k) {
  switch (k) {
    case FaultKind::none:
      return "none";
    case FaultKind::load:
      return "invalid memory read";
    case FaultKind::store:
      return "invalid memory write";
    case FaultKind::ctx_load:
      return "invalid context read";
    case FaultKind::ctx_store:
      return "invalid context write";
    case FaultKind::misaligned_atomic:
      return "misaligned atomic";
    case FaultKind::budget:
      return "instruction budget exhausted";
    case FaultKind::helper:
      return "helper fault";
  }
  return "?";
}

uint8_t* Vm::find(uint64_t addr, uint64_t len, bool write) {
  if (inside(addr, len, stack_lo_, stack_hi_)) {
    if (write) dirty_lo_ = std::min(dirty_lo_, addr);
    return reinterpret_cast<uint8_t*>(addr);
  }
  if (inside(addr, len, pkt_lo_, pkt_hi_) && (!write || in_.packet_writable))
    return reinterpret_cast<uint8_t*>(addr);
  for (const StaticRegion& r : prog_->static_regions)
    if (inside(addr, len, r.start, r.start + r.len) && (!write || r.writable))
      return reinterpret_cast<uint8_t*>(addr);
  for (int i = 0; i < nregions_; ++i) {
    const Region& r = regions_[i];
    if (inside(addr, len, r.lo, r.hi) && (!write || r.writable))
      return reinterpret_cast<uint8_t*>(addr);
  }
  return nullptr;
}

uint8_t* Vm::mem(uint64_t addr, uint64_t len, bool write) {
  if (len == 0) return nullptr;
  return find(addr, len, write);
}

bool Vm::add_region(void* p, uint64_t len, bool writable) {
  if (nregions_ == kMaxDynamicRegions) return false;
  const uint64_t lo = reinterpret_cast<uint64_t>(p);
  regions_[nregions_++] = {lo, lo + len, writable};
  return true;
}

void Vm::set_packet(uint64_t data, uint64_t data_end) {
  in_.ctx_ptrs[kSlotData] = data;
  in_.ctx_ptrs[kSlotDataEnd] = data_end;
  pkt_lo_ = data;
  pkt_hi_ = data_end >= data ? data_end : data;
}

bool Vm::uses_map(uint64_t handle) const {
  return std::binary_search(prog_->maps.begin(), prog_->maps.end(), handle);
}

template <typename T>
bool Vm::load(uint64_t addr, uint64_t* out, bool sign) {
  using S = std::make_signed_t<T>;
  T v;
  if (addr - ctx_lo_ < ctx_size_) {
    const uint32_t off = static_cast<uint32_t>(addr - ctx_lo_);
    if (!layout_->allows(off, sizeof(T), false)) {
      fault_ = {FaultKind::ctx_load, 0, addr};
      return false;
    }
    if (const uint8_t slot = layout_->bytes[off].slot) {
      *out = in_.ctx_ptrs[slot - 1];
      return true;
    }
    memcpy(&v, static_cast<const uint8_t*>(in_.ctx) + off, sizeof(T));
  } else {
    const uint8_t* p = find(addr, sizeof(T), false);
    if (!p) {
      fault_ = {FaultKind::load, 0, addr};
      return false;
    }
    memcpy(&v, p, sizeof(T));
  }
  *out = sign ? static_cast<uint64_t>(static_cast<int64_t>(static_cast<S>(v))) : v;
  return true;
}

template <typename T>
bool Vm::store(uint64_t addr, uint64_t v, bool from_st) {
  const T t = static_cast<T>(v);
  if (addr - ctx_lo_ < ctx_size_) {
    // The kernel takes context stores from registers only (BPF_STX).
    const uint32_t off = static_cast<uint32_t>(addr - ctx_lo_);
    if (from_st || !layout_->allows(off, sizeof(T), true)) {
      fault_ = {FaultKind::ctx_store, 0, addr};
      return false;
    }
    memcpy(static_cast<uint8_t*>(in_.ctx) + off, &t, sizeof(T));
    return true;
  }
  uint8_t* p = find(addr, sizeof(T), true);
  if (!p) {
    fault_ = {FaultKind::store, 0, addr};
    return false;
  }
  memcpy(p, &t, sizeof(T));
  return true;
}

template <typename T>
bool Vm::atomic(uint64_t addr, uint8_t op, uint64_t* src, uint64_t* r0) {
  if (addr - ctx_lo_ < ctx_size_) {
    fault_ = {FaultKind::ctx_store, 0, addr};
    return false;
  }
  if (addr % sizeof(T)) {
    fault_ = {FaultKind::misaligned_atomic, 0, addr};
    return false;
  }
  uint8_t* p = find(addr, sizeof(T), true);
  if (!p) {
    fault_ = {FaultKind::store, 0, addr};
    return false;
  }
  // Map values may be shared with runs on other threads: real atomics.
  T* m = reinterpret_cast<T*>(p);
  const T v = static_cast<T>(*src);
  constexpr int kOrder = __ATOMIC_SEQ_CST;
  switch (op & ~BPF_FETCH) {
    case BPF_ADD:
      if (op & BPF_FETCH)
        *src = __atomic_fetch_add(m, v, kOrder);
      else
        __atomic_fetch_add(m, v, kOrder);
      return true;
    case BPF_AND:
      if (op & BPF_FETCH)
        *src = __atomic_fetch_and(m, v, kOrder);
      else
        __atomic_fetch_and(m, v, kOrder);
      return true;
    case BPF_OR:
      if (op & BPF_FETCH)
        *src = __atomic_fetch_or(m, v, kOrder);
      else
        __atomic_fetch_or(m, v, kOrder);
      return true;
    case BPF_XOR:
      if (op & BPF_FETCH)
        *src = __atomic_fetch_xor(m, v, kOrder);
      else
        __atomic_fetch_xor(m, v, kOrder);
      return true;
    case BPF_XCHG & ~BPF_FETCH:
      *src = __atomic_exchange_n(m, v, kOrder);
      return true;
    case BPF_CMPXCHG & ~BPF_FETCH: {
      T expected = static_cast<T>(*r0);
      __atomic_compare_exchange_n(m, &expected, v, false, kOrder, kOrder);
      *r0 = expected;  // the old value, whether or not it matched
      return true;
    }
  }
  return true;  // the check admits no other selector
}

RunResult Vm::run(const LoadedProgram& prog, const RunInput& in) {
  prog_ = &prog;
  in_ = in;
  layout_ = &context_layout(prog.type);
  ctx_lo_ = reinterpret_cast<uint64_t>(in.ctx);
  ctx_size_ = in.ctx ? layout_->size : 0;
  set_packet(in.ctx_ptrs[kSlotData], in.ctx_ptrs[kSlotDataEnd]);
  nregions_ = 0;
  helper_fault_ = false;
  fault_ = {};
  stack_hi_ = reinterpret_cast<uint64_t>(stack_.data() + stack_.size());
  stack_lo_ = stack_hi_ - kStackSize;
  if (dirty_lo_ == 0) dirty_lo_ = stack_hi_;

  uint64_t r[MAX_BPF_REG] = {};
  r[BPF_REG_1] = ctx_lo_;
  r[BPF_REG_10] = stack_hi_;
  const Decoded* const code = prog.code.data();
  uint32_t pc = 0;
  int depth = 0;
  uint64_t left = budget_;
  RunResult res;

  for (;;) {
    if (left == 0) {
      fault_ = {FaultKind::budget, pc, 0};
      break;
    }
    --left;
    const Decoded& d = code[pc++];
    uint64_t& dst = r[d.dst];
    const uint64_t src = r[d.src];
    const uint64_t k = static_cast<uint64_t>(d.imm);
    const uint32_t d32 = static_cast<uint32_t>(dst);
    switch (d.op) {
#define ALU(name, expr64, expr32)                                            \
  case name##64_K: {                                                         \
    [[maybe_unused]] const uint64_t a = dst, b = k;                          \
    dst = (expr64);                                                          \
    break;                                                                   \
  }                                                                          \
  case name##64_X: {                                                         \
    [[maybe_unused]] const uint64_t a = dst, b = src;                        \
    dst = (expr64);                                                          \
    break;                                                                   \
  }                                                                          \
  case name##32_K: {                                                         \
    [[maybe_unused]] const uint32_t a = d32, b = static_cast<uint32_t>(k);   \
    dst = static_cast<uint32_t>(expr32);                                     \
    break;                                                                   \
  }                                                                          \
  case name##32_X: {                                                         \
    [[maybe_unused]] const uint32_t a = d32, b = static_cast<uint32_t>(src); \
    dst = static_cast<uint32_t>(expr32);                                     \
    break;                                                                   \
  }
      ALU(ADD, a + b, a + b)
      ALU(SUB, a - b, a - b)
      ALU(MUL, a * b, a * b)
      ALU(OR, a | b, a | b)
      ALU(AND, a & b, a & b)
      ALU(XOR, a ^ b, a ^ b)
      ALU(MOV, b, b)
      ALU(LSH, a << (b & 63), a << (b & 31))
      ALU(RSH, a >> (b & 63), a >> (b & 31))
      ALU(ARSH, static_cast<uint64_t>(static_cast<int64_t>(a) >> (b & 63)),
          static_cast<uint32_t>(static_cast<int32_t>(a) >> (b & 31)))
      // Division by zero gives 0 and modulo by zero leaves dst (truncated to
      // 32 bits in the 32-bit forms), as the kernel's runtime patches do.
      ALU(DIV, b ? a / b : 0, b ? a / b : 0)
      ALU(MOD, b ? a % b : a, b ? a % b : a)
      ALU(SDIV, sdiv64(a, b), sdiv32(a, b))
      ALU(SMOD, smod64(a, b), smod32(a, b))
#undef ALU
      case NEG64:
        dst = 0 - dst;
        break;
      case NEG32:
        dst = static_cast<uint32_t>(0u - d32);
        break;
      case MOVSX64_8:
        dst = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int8_t>(src)));
        break;
      case MOVSX64_16:
        dst = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int16_t>(src)));
        break;
      case MOVSX64_32:
        dst = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(src)));
        break;
      case MOVSX32_8:
        dst = static_cast<uint32_t>(static_cast<int32_t>(static_cast<int8_t>(src)));
        break;
      case MOVSX32_16:
        dst = static_cast<uint32_t>(static_cast<int32_t>(static_cast<int16_t>(src)));
        break;
      case LE16:
        dst = static_cast<uint16_t>(dst);
        break;
      case LE32:
        dst = d32;
        break;
      case LE64:
        break;
      case BE16:
      case BSWAP16:
        dst = __builtin_bswap16(static_cast<uint16_t>(dst));
        break;
      case BE32:
      case BSWAP32:
        dst = __builtin_bswap32(d32);
        break;
      case BE64:
      case BSWAP64:
        dst = __builtin_bswap64(dst);
        break;
      case LDDW:
        dst = k;
        ++pc;
        break;

#define MEM_LOAD(name, T, sign)                                            \
  case name:                                                               \
    if (!load<T>(src + static_cast<int64_t>(d.off), &dst, sign)) goto out; \
    break;
        MEM_LOAD(LDX_B, uint8_t, false)
        MEM_LOAD(LDX_H, uint16_t, false)
        MEM_LOAD(LDX_W, uint32_t, false)
        MEM_LOAD(LDX_DW, uint64_t, false)
        MEM_LOAD(LDXSX_B, uint8_t, true)
        MEM_LOAD(LDXSX_H, uint16_t, true)
        MEM_LOAD(LDXSX_W, uint32_t, true)
#undef MEM_LOAD
#define MEM_STORE(name, T, value, from_st)                                      \
  case name:                                                                    \
    if (!store<T>(dst + static_cast<int64_t>(d.off), value, from_st)) goto out; \
    break;
        MEM_STORE(ST_B, uint8_t, k, true)
        MEM_STORE(ST_H, uint16_t, k, true)
        MEM_STORE(ST_W, uint32_t, k, true)
        MEM_STORE(ST_DW, uint64_t, k, true)
        MEM_STORE(STX_B, uint8_t, src, false)
        MEM_STORE(STX_H, uint16_t, src, false)
        MEM_STORE(STX_W, uint32_t, src, false)
        MEM_STORE(STX_DW, uint64_t, src, false)
#undef MEM_STORE
      case ATOMIC_W:
        if (!atomic<uint32_t>(dst + static_cast<int64_t>(d.off), d.aux, &r[d.src], &r[0])) goto out;
        break;
      case ATOMIC_DW:
        if (!atomic<uint64_t>(dst + static_cast<int64_t>(d.off), d.aux, &r[d.src], &r[0])) goto out;
        break;

      case JA:
        pc = static_cast<uint32_t>(d.off);
        break;
#define JMP(name, cond64, cond32)                                                   \
  case name##64_K:                                                                  \
    if (cond64(dst, k)) pc = static_cast<uint32_t>(d.off);                          \
    break;                                                                          \
  case name##64_X:                                                                  \
    if (cond64(dst, src)) pc = static_cast<uint32_t>(d.off);                        \
    break;                                                                          \
  case name##32_K:                                                                  \
    if (cond32(d32, static_cast<uint32_t>(k))) pc = static_cast<uint32_t>(d.off);   \
    break;                                                                          \
  case name##32_X:                                                                  \
    if (cond32(d32, static_cast<uint32_t>(src))) pc = static_cast<uint32_t>(d.off); \
    break;
#define U_EQ(a, b) ((a) == (b))
#define U_NE(a, b) ((a) != (b))
#define U_GT(a, b) ((a) > (b))
#define U_GE(a, b) ((a) >= (b))
#define U_LT(a, b) ((a) < (b))
#define U_LE(a, b) ((a) <= (b))
#define U_SET(a, b) (((a) & (b)) != 0)
#define S64(op) \
  [](uint64_t a, uint64_t b) { return static_cast<int64_t>(a) op static_cast<int64_t>(b); }
#define S32(op) \
  [](uint32_t a, uint32_t b) { return static_cast<int32_t>(a) op static_cast<int32_t>(b); }
        JMP(JEQ, U_EQ, U_EQ)
        JMP(JNE, U_NE, U_NE)
        JMP(JGT, U_GT, U_GT)
        JMP(JGE, U_GE, U_GE)
        JMP(JLT, U_LT, U_LT)
        JMP(JLE, U_LE, U_LE)
        JMP(JSET, U_SET, U_SET)
        JMP(JSGT, S64(>), S32(>))
        JMP(JSGE, S64(>=), S32(>=))
        JMP(JSLT, S64(<), S32(<))
        JMP(JSLE, S64(<=), S32(<=))
#undef JMP
#undef U_EQ
#undef U_NE
#undef U_GT
#undef U_GE
#undef U_LT
#undef U_LE
#undef U_SET
#undef S64
#undef S32

      case CALL_HELPER:
        r[0] = d.fn(*this, r[1], r[2], r[3], r[4], r[5]);
        if (helper_fault_) {
          fault_ = {FaultKind::helper, 0, 0};
          goto out;
        }
        break;
      case CALL_LOCAL: {
        // The check bounds the depth to kMaxCallFrames.
        Frame& f = frames_[depth++];
        f.ret_pc = pc;
        std::copy(r + BPF_REG_6, r + BPF_REG_10 + 1, f.saved);
        r[BPF_REG_10] -= kStackSize;
        stack_lo_ = r[BPF_REG_10] - kStackSize;
        pc = static_cast<uint32_t>(d.off);
        break;
      }
      case EXIT:
        if (depth == 0) {
          res.r0 = r[0];
          goto out;
        } else {
          const Frame& f = frames_[--depth];
          std::copy(f.saved, f.saved + 5, r + BPF_REG_6);
          stack_lo_ = r[BPF_REG_10] - kStackSize;
          pc = f.ret_pc;
        }
        break;
    }
  }
out:
  // Memory and helper faults stop at the instruction just fetched.
  if (fault_.kind != FaultKind::none && fault_.kind != FaultKind::budget) fault_.insn = pc - 1;
  res.fault = fault_;
  res.insns = budget_ - left;
  // Zero what this run wrote to the stack, so the next run starts clean.
  memset(reinterpret_cast<void*>(dirty_lo_), 0, stack_hi_ - dirty_lo_);
  dirty_lo_ = stack_hi_;
  return res;
}

}  // namespace sockshim::bpf
