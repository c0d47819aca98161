// The interpreter. Registers are plain 64-bit values and a pointer is a host
// address, so programs may do pointer arithmetic as in the kernel; every load
// and store is checked against the regions this run may touch: its stack
// frames, the context (per the program type's ContextLayout), the packet
// between data and data_end, the program's global data, and what helpers
// registered (map values, sk_storage). Anything else stops the run with a
// Fault; the caller decides the verdict.
#pragma once

#include <array>
#include <cstdint>

#include "bpf/context.h"
#include "bpf/insn.h"
#include "bpf/program.h"

namespace sockshim::bpf {

enum class FaultKind : uint8_t {
  none,
  load,               // outside every region the run may read
  store,              // outside every region the run may write
  ctx_load,           // a context field (or size) the program type may not read
  ctx_store,          // ... may not write
  misaligned_atomic,  // the kernel requires atomics to be aligned
  budget,             // instruction budget exhausted
  helper,             // a helper refused its arguments (Vm::fault)
};

const char* fault_kind_name(FaultKind k);

struct Fault {
  FaultKind kind = FaultKind::none;
  uint32_t insn = 0;  // index of the faulting instruction (the call, for a helper)
  uint64_t addr = 0;  // the address accessed, for the memory kinds
};

struct RunResult {
  uint64_t r0 = 0;     // the return value, when no fault
  uint64_t insns = 0;  // instructions executed
  Fault fault;
  bool ok() const { return fault.kind == FaultKind::none; }
};

struct RunInput {
  void* ctx = nullptr;  // the context struct (context_layout(type).size bytes)
  std::array<uint64_t, kCtxSlots> ctx_ptrs{};  // data, data_end, sk
  bool packet_writable = false;                // direct packet writes (sk_msg, sk_skb: yes)
  void* user = nullptr;                        // for the helpers: Vm::user()
  // The struct bpf_sock ctx->sk points at (the caller puts the same address
  // in ctx_ptrs[kSlotSk]), readable as sock_layout(type) allows; nullptr:
  // loads through sk fault.
  const void* sock = nullptr;
  // Called with `user` once, before the run first touches the context other
  // than by a load through the context pointer itself (whose offsets the
  // check collected in LoadedProgram::ctx_reads), or touches *sock. A caller
  // may then fill only the ctx_reads words of the context before the run and
  // the rest, and the socket, here. nullptr: both are complete already.
  void (*complete)(void* user) = nullptr;
};

inline constexpr uint64_t kDefaultBudget = 1'000'000;
inline constexpr int kMaxDynamicRegions = 16;

// One per thread: holds the stack and the per-run state. Not reentrant.
class Vm {
 public:
  Vm() = default;
  Vm(const Vm&) = delete;
  Vm& operator=(const Vm&) = delete;

  // `prog` comes from a successful load_program(); the memory RunInput points
  // at must stay valid for the run.
  RunResult run(const LoadedProgram& prog, const RunInput& in);
  void set_budget(uint64_t insns) { budget_ = insns; }

  // --- for helpers, during a run ---
  // Host pointer to [addr, addr + len) if it lies inside one region (not the
  // context) with the needed permission; nullptr otherwise. len > 0.
  uint8_t* mem(uint64_t addr, uint64_t len, bool write);
  // Lets the program touch [p, p + len) for the rest of the run (a map value
  // or sk_storage the helper returns). False when the table is full.
  bool add_region(void* p, uint64_t len, bool writable);
  // Replace the packet (after a helper changed the data): the context's data
  // and data_end slots and the packet region follow.
  void set_packet(uint64_t data, uint64_t data_end);
  // Whether `v` is the context pointer, and whether it is a map the program
  // referenced (a helper's map argument).
  bool is_ctx(uint64_t v) const { return v == ctx_lo_ && ctx_lo_ != 0; }
  bool uses_map(uint64_t handle) const;
  void* user() const { return in_.user; }
  const RunInput& input() const { return in_; }
  // Stop the run after this helper returns, with FaultKind::helper.
  void fault() { helper_fault_ = true; }

 private:
  struct Region {
    uint64_t lo, hi;
    bool writable;
  };
  struct Frame {
    uint32_t ret_pc;
    uint64_t saved[5];  // r6 .. r10 of the caller
  };

  template <typename T>
  bool atomic(uint64_t addr, uint8_t op, uint64_t* src, uint64_t* r0);
  uint8_t* find(uint64_t addr, uint64_t len, bool write);
  void complete();

  const LoadedProgram* prog_ = nullptr;
  RunInput in_;
  uint64_t budget_ = kDefaultBudget;
  uint64_t ctx_lo_ = 0;
  uint64_t ctx_size_ = 0;  // 0 when the run has no context
  Fault fault_;
  uint64_t stack_lo_ = 0, stack_hi_ = 0;  // the current frame and its callers
  uint64_t dirty_lo_ = 0;                 // lowest stack byte written this run
  uint64_t pkt_lo_ = 0, pkt_hi_ = 0;
  bool complete_ = true;  // in_.complete has run (or is not needed)
  int nregions_ = 0;
  bool helper_fault_ = false;
  std::array<Region, kMaxDynamicRegions> regions_{};
  std::array<Frame, kMaxCallFrames> frames_{};
  alignas(16) std::array<uint8_t, kMaxCallFrames * kStackSize> stack_{};
};

}  // namespace sockshim::bpf
