#include "bpf/vm.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace sockshim::bpf {

using namespace op;

static_assert(std::endian::native == std::endian::little,
              "BPF_END and the context byte order assume a little-endian host");

namespace {

// The dispatch table of a run without a context: the context loads' entries
// go to the general loads.
struct NoCtxDispatch {
  NoCtxDispatch(const void* const* all, const void* ldx_b, const void* ldx_h, const void* ldx_w,
                const void* ldx_dw, const void* general) {
    std::copy(all, all + kOpCount, table.begin());
    table[LDXC_B] = ldx_b;
    table[LDXC_H] = ldx_h;
    table[LDXC_W] = ldx_w;
    table[LDXC_DW] = ldx_dw;
    table[LDXC_SLOT] = general;
    for (int o = LDXCW_JEQ64; o <= LDXCW_JSLE32; ++o) table[o] = ldx_w;
  }
  std::array<const void*, kOpCount> table;
};

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

void Vm::complete() {
  complete_ = true;
  if (in_.complete) in_.complete(in_.user);
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

// Direct-threaded: every handler ends in its own indirect jump through the
// table (GCC's labels as values), which predicts better than one central
// switch. The state the hot path needs (registers, context and stack bounds)
// is in locals the compiler keeps in registers; the packet, global data and
// helper regions, which helpers change, stay in members (find()).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpedantic"
RunResult Vm::run(const LoadedProgram& prog, const RunInput& in) {
  prog_ = &prog;
  in_ = in;
  const ContextLayout& layout = *prog.layout;
  const CtxByte* const ctx_bytes = layout.bytes;
  const uint64_t ctx_lo = reinterpret_cast<uint64_t>(in.ctx);
  const uint64_t ctx_size = ctx_lo ? layout.size : 0;
  ctx_lo_ = ctx_lo;
  ctx_size_ = ctx_size;
  pkt_lo_ = in.ctx_ptrs[kSlotData];
  pkt_hi_ = std::max(in.ctx_ptrs[kSlotDataEnd], pkt_lo_);
  complete_ = in.complete == nullptr;
  nregions_ = 0;
  helper_fault_ = false;
  fault_ = {};
  const uint64_t stack_hi = reinterpret_cast<uint64_t>(stack_.data() + stack_.size());
  stack_hi_ = stack_hi;
  stack_lo_ = stack_hi - kStackSize;
  dirty_lo_ = stack_hi;
  uint64_t stack_span = kStackSize;  // stack_hi - stack_lo_

  uint64_t r[MAX_BPF_REG] = {};
  r[BPF_REG_1] = ctx_lo;
  r[BPF_REG_10] = stack_hi;
  const Decoded* const code = prog.code.data();
  const Decoded* d = code;  // the instruction running
  int depth = 0;
  // Signed: instructions running in sequence may take it below 0 (below).
  int64_t left = budget_ > INT64_MAX ? INT64_MAX : static_cast<int64_t>(budget_);
  const int64_t budget = left;
  uint64_t r0 = 0;  // the result, at the outermost exit

  static const void* const kDispatch[] = {
#define SOCKSHIM_L4(n) &&L_##n##64_K, &&L_##n##64_X, &&L_##n##32_K, &&L_##n##32_X,
#define SOCKSHIM_L1(n) &&L_##n,
#define SOCKSHIM_LLJ(n) &&L_LDXCW_##n##64, &&L_LDXCW_##n##32,
      SOCKSHIM_BPF_ALU_OPS(SOCKSHIM_L4) SOCKSHIM_BPF_JMP_OPS(SOCKSHIM_L4)
          SOCKSHIM_BPF_OTHER_OPS(SOCKSHIM_L1) SOCKSHIM_BPF_JMP_OPS(SOCKSHIM_LLJ)
              SOCKSHIM_BPF_FUSED_OPS(SOCKSHIM_L1)
#undef SOCKSHIM_L4
#undef SOCKSHIM_L1
#undef SOCKSHIM_LLJ
  };
  static_assert(sizeof(kDispatch) / sizeof(kDispatch[0]) == kOpCount);
  // Without a context no register holds its pointer, so the context loads
  // take the general way; their handlers then need not test for it.
  const void* const* dispatch = kDispatch;
  if (__builtin_expect(!ctx_lo, 0)) {
    static const NoCtxDispatch kNoCtx(kDispatch, &&L_LDX_B, &&L_LDX_H, &&L_LDX_W, &&L_LDX_DW,
                                      &&L_LDXC_GENERAL);
    dispatch = kNoCtx.table.data();
  }

// DISPATCH runs the instruction at d, NEXT the one after it, JUMP(t) the one
// at index t; each charges the budget. Only CHECK_BUDGET compares it: before
// a taken jump, a call, an exit, a store, an lddw and at the end, so that no
// loop runs past it and no effect outside the registers happens past it.
// Between two checks instructions run in sequence, which lets `budget:` name
// the first one that ran without budget, as if each had been checked.
#define DISPATCH           \
  do {                     \
    --left;                \
    goto* dispatch[d->op]; \
  } while (0)
#define CHECK_BUDGET                                \
  do {                                              \
    if (__builtin_expect(left < 0, 0)) goto budget; \
  } while (0)
#define NEXT  \
  do {        \
    ++d;      \
    DISPATCH; \
  } while (0)
#define JUMP(t)     \
  do {              \
    CHECK_BUDGET;   \
    d = code + (t); \
    DISPATCH;       \
  } while (0)
#define DST r[d->dst]
#define SRC r[d->src]
#define K static_cast<uint64_t>(d->imm)
#define FAULT(kind, addr)     \
  do {                        \
    fault_ = {kind, 0, addr}; \
    goto out;                 \
  } while (0)

  DISPATCH;

#define ALU(name, expr64, expr32)                                                                 \
  L_##name##64_K : {                                                                              \
    [[maybe_unused]] const uint64_t a = DST, b = K;                                               \
    DST = (expr64);                                                                               \
    NEXT;                                                                                         \
  }                                                                                               \
  L_##name##64_X : {                                                                              \
    [[maybe_unused]] const uint64_t a = DST, b = SRC;                                             \
    DST = (expr64);                                                                               \
    NEXT;                                                                                         \
  }                                                                                               \
  L_##name##32_K : {                                                                              \
    [[maybe_unused]] const uint32_t a = static_cast<uint32_t>(DST), b = static_cast<uint32_t>(K); \
    DST = static_cast<uint32_t>(expr32);                                                          \
    NEXT;                                                                                         \
  }                                                                                               \
  L_##name##32_X : {                                                                              \
    [[maybe_unused]] const uint32_t a = static_cast<uint32_t>(DST),                               \
                                    b = static_cast<uint32_t>(SRC);                               \
    DST = static_cast<uint32_t>(expr32);                                                          \
    NEXT;                                                                                         \
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

L_NEG64:
  DST = 0 - DST;
  NEXT;
L_NEG32:
  DST = static_cast<uint32_t>(0u - static_cast<uint32_t>(DST));
  NEXT;
L_MOVSX64_8:
  DST = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int8_t>(SRC)));
  NEXT;
L_MOVSX64_16:
  DST = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int16_t>(SRC)));
  NEXT;
L_MOVSX64_32:
  DST = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(SRC)));
  NEXT;
L_MOVSX32_8:
  DST = static_cast<uint32_t>(static_cast<int32_t>(static_cast<int8_t>(SRC)));
  NEXT;
L_MOVSX32_16:
  DST = static_cast<uint32_t>(static_cast<int32_t>(static_cast<int16_t>(SRC)));
  NEXT;
L_LE16:
  DST = static_cast<uint16_t>(DST);
  NEXT;
L_LE32:
  DST = static_cast<uint32_t>(DST);
  NEXT;
L_LE64:
  NEXT;
L_BE16:
L_BSWAP16:
  DST = __builtin_bswap16(static_cast<uint16_t>(DST));
  NEXT;
L_BE32:
L_BSWAP32:
  DST = __builtin_bswap32(static_cast<uint32_t>(DST));
  NEXT;
L_BE64:
L_BSWAP64:
  DST = __builtin_bswap64(DST);
  NEXT;
L_LDDW:
  CHECK_BUDGET;  // the sequence breaks here
  DST = K;
  d += 2;
  DISPATCH;
L_LDDW_TAIL:  // never reached: the check rejects jumps into an lddw
  NEXT;

  // Loads and stores: the context, then the live stack frames, then find()
  // for the rest. A load through the context pointer itself has its answer
  // from the check (Decoded::aux); other context loads consult the layout.
  // Context pointer slots answer from in_.ctx_ptrs, which helpers may change
  // (set_packet). Packet loads are tried inline before find().
#define LOAD(name, T, Ext)                                                                         \
  L_##name : {                                                                                     \
    const uint64_t addr = SRC + static_cast<int64_t>(d->off);                                      \
    T v;                                                                                           \
    if (SRC == ctx_lo && d->aux >= kCtxPlain && ctx_lo) {                                          \
      if (d->aux != kCtxPlain) {                                                                   \
        DST = in_.ctx_ptrs[d->aux - kCtxSlot];                                                     \
        NEXT;                                                                                      \
      }                                                                                            \
      memcpy(&v, reinterpret_cast<const void*>(ctx_lo + d->off), sizeof(T));                       \
    } else if (addr - ctx_lo < ctx_size) {                                                         \
      const CtxByte& b = ctx_bytes[addr - ctx_lo];                                                 \
      if (!(b.read_sizes & sizeof(T))) FAULT(FaultKind::ctx_load, addr);                           \
      if (b.slot) {                                                                                \
        DST = in_.ctx_ptrs[b.slot - 1];                                                            \
        NEXT;                                                                                      \
      }                                                                                            \
      if (!complete_) complete();                                                                  \
      memcpy(&v, reinterpret_cast<const void*>(addr), sizeof(T));                                  \
    } else if (addr - stack_hi + stack_span <= stack_span - sizeof(T) ||                           \
               inside(addr, sizeof(T), pkt_lo_, pkt_hi_)) {                                        \
      memcpy(&v, reinterpret_cast<const void*>(addr), sizeof(T));                                  \
    } else if (addr - reinterpret_cast<uint64_t>(in_.sock) < sizeof(bpf_sock) && in_.sock) {       \
      if (!(prog.sock->bytes[addr - reinterpret_cast<uint64_t>(in_.sock)].read_sizes & sizeof(T))) \
        FAULT(FaultKind::ctx_load, addr);                                                          \
      if (!complete_) complete();                                                                  \
      memcpy(&v, reinterpret_cast<const void*>(addr), sizeof(T));                                  \
    } else {                                                                                       \
      const uint8_t* p = find(addr, sizeof(T), false);                                             \
      if (!p) FAULT(FaultKind::load, addr);                                                        \
      memcpy(&v, p, sizeof(T));                                                                    \
    }                                                                                              \
    DST = static_cast<uint64_t>(static_cast<Ext>(v));                                              \
    NEXT;                                                                                          \
  }
  LOAD(LDX_B, uint8_t, uint8_t)
  LOAD(LDX_H, uint16_t, uint16_t)
  LOAD(LDX_W, uint32_t, uint32_t)
  LOAD(LDX_DW, uint64_t, uint64_t)
  LOAD(LDXSX_B, uint8_t, int8_t)
  LOAD(LDXSX_H, uint16_t, int16_t)
  LOAD(LDXSX_W, uint32_t, int32_t)
#undef LOAD
  // Through the context pointer, as compiled programs load context fields;
  // through anything else, the general load in imm.
#define LOAD_CTX(name, T)                                                    \
  L_##name : if (__builtin_expect(SRC != ctx_lo, 0)) goto* dispatch[d->imm]; \
  {                                                                          \
    T v;                                                                     \
    memcpy(&v, reinterpret_cast<const void*>(ctx_lo + d->off), sizeof(T));   \
    DST = v;                                                                 \
    NEXT;                                                                    \
  }
  LOAD_CTX(LDXC_B, uint8_t)
  LOAD_CTX(LDXC_H, uint16_t)
  LOAD_CTX(LDXC_W, uint32_t)
  LOAD_CTX(LDXC_DW, uint64_t)
#undef LOAD_CTX
L_LDXC_SLOT:
  if (__builtin_expect(SRC != ctx_lo, 0)) {
  L_LDXC_GENERAL:
    goto* dispatch[d->imm];
  }
  DST = in_.ctx_ptrs[d->aux - kCtxSlot];
  NEXT;
  // The kernel takes context stores from registers only (BPF_STX).
#define STORE(name, T, value, from_st)                                    \
  L_##name : {                                                            \
    CHECK_BUDGET;                                                         \
    const uint64_t addr = DST + static_cast<int64_t>(d->off);             \
    const T t = static_cast<T>(value);                                    \
    if (addr - ctx_lo < ctx_size) {                                       \
      if (from_st || !(ctx_bytes[addr - ctx_lo].write_sizes & sizeof(T))) \
        FAULT(FaultKind::ctx_store, addr);                                \
      if (!complete_) complete();                                         \
      memcpy(reinterpret_cast<void*>(addr), &t, sizeof(T));               \
    } else if (addr - stack_hi + stack_span <= stack_span - sizeof(T)) {  \
      memcpy(reinterpret_cast<void*>(addr), &t, sizeof(T));               \
      dirty_lo_ = std::min(dirty_lo_, addr);                              \
    } else {                                                              \
      uint8_t* p = find(addr, sizeof(T), true);                           \
      if (!p) FAULT(FaultKind::store, addr);                              \
      memcpy(p, &t, sizeof(T));                                           \
    }                                                                     \
    NEXT;                                                                 \
  }
  STORE(ST_B, uint8_t, K, true)
  STORE(ST_H, uint16_t, K, true)
  STORE(ST_W, uint32_t, K, true)
  STORE(ST_DW, uint64_t, K, true)
  STORE(STX_B, uint8_t, SRC, false)
  STORE(STX_H, uint16_t, SRC, false)
  STORE(STX_W, uint32_t, SRC, false)
  STORE(STX_DW, uint64_t, SRC, false)
#undef STORE
  // Copies in and out, so that no register's address escapes the loop.
#define ATOMIC(name, T)                                                              \
  L_##name : {                                                                       \
    CHECK_BUDGET;                                                                    \
    uint64_t src = SRC, r0 = r[0];                                                   \
    if (!atomic<T>(DST + static_cast<int64_t>(d->off), d->aux, &src, &r0)) goto out; \
    SRC = src;                                                                       \
    r[0] = r0;                                                                       \
    NEXT;                                                                            \
  }
  ATOMIC(ATOMIC_W, uint32_t)
  ATOMIC(ATOMIC_DW, uint64_t)
#undef ATOMIC

L_JA:
  JUMP(d->off);
#define JMP(name, cond64, cond32)                                                                  \
  L_##name##64_K : if (cond64(DST, K)) JUMP(d->off);                                               \
  NEXT;                                                                                            \
  L_##name##64_X : if (cond64(DST, SRC)) JUMP(d->off);                                             \
  NEXT;                                                                                            \
  L_##name##32_K : if (cond32(static_cast<uint32_t>(DST), static_cast<uint32_t>(K))) JUMP(d->off); \
  NEXT;                                                                                            \
  L_##name##32_X : if (cond32(static_cast<uint32_t>(DST), static_cast<uint32_t>(SRC)))             \
                       JUMP(d->off);                                                               \
  NEXT;
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

  // Fused operations (program.h). Each charges the budget for every
  // instruction it stands for and, when it jumps, leaves d on the jump's
  // slot first, so that the budget and the counts come out as unfused.
#define LDXCW_JMP(name, cond64, cond32)                                      \
  L_LDXCW_##name##64 : if (__builtin_expect(SRC != ctx_lo, 0)) goto L_LDX_W; \
  {                                                                          \
    uint32_t v;                                                              \
    memcpy(&v, reinterpret_cast<const void*>(ctx_lo + d->off), sizeof v);    \
    DST = v;                                                                 \
    --left;                                                                  \
    if (cond64(uint64_t{v}, K)) {                                            \
      ++d;                                                                   \
      JUMP(d->off);                                                          \
    }                                                                        \
    d += 2;                                                                  \
    DISPATCH;                                                                \
  }                                                                          \
  L_LDXCW_##name##32 : if (__builtin_expect(SRC != ctx_lo, 0)) goto L_LDX_W; \
  {                                                                          \
    uint32_t v;                                                              \
    memcpy(&v, reinterpret_cast<const void*>(ctx_lo + d->off), sizeof v);    \
    DST = v;                                                                 \
    --left;                                                                  \
    if (cond32(v, static_cast<uint32_t>(K))) {                               \
      ++d;                                                                   \
      JUMP(d->off);                                                          \
    }                                                                        \
    d += 2;                                                                  \
    DISPATCH;                                                                \
  }
  LDXCW_JMP(JEQ, U_EQ, U_EQ)
  LDXCW_JMP(JNE, U_NE, U_NE)
  LDXCW_JMP(JGT, U_GT, U_GT)
  LDXCW_JMP(JGE, U_GE, U_GE)
  LDXCW_JMP(JLT, U_LT, U_LT)
  LDXCW_JMP(JLE, U_LE, U_LE)
  LDXCW_JMP(JSET, U_SET, U_SET)
  LDXCW_JMP(JSGT, S64(>), S32(>))
  LDXCW_JMP(JSGE, S64(>=), S32(>=))
  LDXCW_JMP(JSLT, S64(<), S32(<))
  LDXCW_JMP(JSLE, S64(<=), S32(<=))
#undef LDXCW_JMP
L_MOVADD:
  DST = SRC + K;
  --left;
  d += 2;
  DISPATCH;
L_MOVADD_JGT:
  DST = SRC + K;
  left -= 2;
  if (DST > r[d[2].src]) {
    d += 2;
    JUMP(d->off);
  }
  d += 3;
  DISPATCH;
L_LDDW_JEQ:
  CHECK_BUDGET;  // as L_LDDW
  DST = K;
  --left;
  if (SRC == DST) {
    d += 2;
    JUMP(d->off);
  }
  d += 3;
  DISPATCH;
L_LDDW_JNE:
  CHECK_BUDGET;
  DST = K;
  --left;
  if (SRC != DST) {
    d += 2;
    JUMP(d->off);
  }
  d += 3;
  DISPATCH;
L_MOV_EXIT:
  r[0] = K;
  --left;
  ++d;
  goto L_EXIT;
#undef U_EQ
#undef U_NE
#undef U_GT
#undef U_GE
#undef U_LT
#undef U_LE
#undef U_SET
#undef S64
#undef S32

L_CALL_HELPER:
  CHECK_BUDGET;
  r[0] = d->fn(*this, r[1], r[2], r[3], r[4], r[5]);
  if (helper_fault_) FAULT(FaultKind::helper, 0);
  NEXT;
L_CALL_LOCAL : {
  // The check bounds the depth to kMaxCallFrames.
  Frame& f = frames_[depth++];
  f.ret_pc = static_cast<uint32_t>(d - code);
  std::copy(r + BPF_REG_6, r + BPF_REG_10 + 1, f.saved);
  r[BPF_REG_10] -= kStackSize;
  stack_span += kStackSize;
  stack_lo_ = stack_hi - stack_span;
  JUMP(d->off);
}
L_EXIT:
  if (depth == 0) {
    r0 = r[0];
    goto out;
  } else {
    const Frame& f = frames_[--depth];
    std::copy(f.saved, f.saved + 5, r + BPF_REG_6);
    stack_span -= kStackSize;
    stack_lo_ = stack_hi - stack_span;
    JUMP(f.ret_pc + 1);
  }

out:
  // Memory and helper faults stop at the instruction just fetched, unless
  // the budget ran out before it.
  if (__builtin_expect(left < 0, 0)) goto budget;
  if (fault_.kind != FaultKind::none) fault_.insn = static_cast<uint32_t>(d - code);
  goto done;
budget:
  // d was charged last, with left + 1 before it: the one -(left + 1) before
  // it in the sequence was the first to find none.
  fault_ = {FaultKind::budget, static_cast<uint32_t>(d - code + left + 1), 0};
  left = 0;
done:
  const RunResult res{r0, static_cast<uint64_t>(budget - left), fault_};
  // Zero what this run and its helpers wrote to the stack, so the next run
  // starts clean.
  if (dirty_lo_ < stack_hi) memset(reinterpret_cast<void*>(dirty_lo_), 0, stack_hi - dirty_lo_);
  dirty_lo_ = stack_hi;
  return res;
#undef DISPATCH
#undef CHECK_BUDGET
#undef NEXT
#undef JUMP
#undef DST
#undef SRC
#undef K
#undef FAULT
}
#pragma GCC diagnostic pop

}  // namespace sockshim::bpf
