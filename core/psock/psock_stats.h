// Psock counters, in bytes (in, pushed, popped, passed, dropped, redirected,
// queued) and per program rule (how often each rule's `if` held and what the
// run decided).
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "policy/program.h"

namespace sockshim {

// Byte counters of one direction of a psock: tx for the sk_msg send path, rx
// for the sk_skb receive path. Every byte the programs take in is counted in
// `in` once, and in exactly one of passed, dropped or redirected once a verdict
// has applied to it; until then it is held (corked, in the message a send is
// working on, in a partial frame), which the dump reports as queued. push_data
// and pop_data make and remove bytes, counted as pushed and popped, so
//   in + pushed - popped == passed + dropped + redirected + queued.
struct PsockDirStats {
  std::atomic<uint64_t> in{0};      // bytes that reached the programs
  std::atomic<uint64_t> pushed{0};  // tx: bytes push_data added (net growth of a run)
  std::atomic<uint64_t> popped{0};  // tx: bytes pop_data removed (net shrink of a run)
  std::atomic<uint64_t> passed{
      0};  // bytes a PASS verdict sent on (tx) or queued for the reader (rx)
  std::atomic<uint64_t> dropped{0};     // bytes a DROP verdict (or a failed redirect) discarded
  std::atomic<uint64_t> redirected{0};  // bytes that left through a redirect target
  std::atomic<uint64_t> runs{0};        // verdict program runs
  // tx: the bytes the send path holds (its cork and the message a send is
  // working on), published with every counter change.
  std::atomic<uint64_t> held{0};
  // tx: odd while the sender changes the counters (a seqlock), so that a dump
  // sees them all from one moment.
  std::atomic<uint32_t> seq{0};

  void reset() noexcept {
    for (auto* c : {&in, &pushed, &popped, &passed, &dropped, &redirected, &runs, &held})
      c->store(0, std::memory_order_relaxed);
  }
  void take(uint64_t bytes) noexcept { in.fetch_add(bytes, std::memory_order_relaxed); }
  void ran() noexcept { runs.fetch_add(1, std::memory_order_relaxed); }
  void apply(policy::Verdict v, uint64_t bytes) noexcept {
    (v == policy::Verdict::pass   ? passed
     : v == policy::Verdict::drop ? dropped
                                  : redirected)
        .fetch_add(bytes, std::memory_order_relaxed);
  }
};

// One change to the tx counters. in is negative when bytes counted in earlier
// in the same send are given back: the caller was told they were not taken (a
// real send that came back short or failed).
struct TxStep {
  int64_t in = 0;
  uint64_t pushed = 0, popped = 0, passed = 0, dropped = 0, redirected = 0, runs = 0;
};

// Applies step and publishes held as one change. Only under the psock's send
// lock: writers are serialised there, so a load and a store does what a
// locked add would, cheaper; the dump only reads. Inline: the PASS path.
inline void tx_commit(PsockDirStats& s, const TxStep& step, uint64_t held) noexcept {
  constexpr auto relaxed = std::memory_order_relaxed;
  auto add = [](std::atomic<uint64_t>& c, uint64_t n) {
    if (n) c.store(c.load(relaxed) + n, relaxed);
  };
  uint32_t q = s.seq.load(relaxed);
  s.seq.store(q + 1, relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  add(s.in, static_cast<uint64_t>(step.in));
  add(s.pushed, step.pushed);
  add(s.popped, step.popped);
  add(s.passed, step.passed);
  add(s.dropped, step.dropped);
  add(s.redirected, step.redirected);
  add(s.runs, step.runs);
  s.held.store(held, relaxed);
  s.seq.store(q + 2, std::memory_order_release);
}

// The counters of one direction as of one moment.
struct DirSnapshot {
  uint64_t in = 0, pushed = 0, popped = 0, passed = 0, dropped = 0, redirected = 0, runs = 0,
           held = 0;
};

// Reads s without stopping its writer: retries while a tx_commit is under way.
DirSnapshot dir_snapshot(const PsockDirStats& s) noexcept;

struct PsockStats {
  PsockDirStats tx;
  PsockDirStats rx;
  // Bytes other psocks (or this one) put into this psock's ingress queue.
  std::atomic<uint64_t> ingress_in{0};

  void reset() noexcept {
    tx.reset();
    rx.reset();
    ingress_in.store(0, std::memory_order_relaxed);
  }
};

struct RuleStats {
  uint64_t hits = 0;  // runs in which this rule's `if` held
  uint64_t passed = 0, dropped = 0, redirected = 0;
};

// Records one run of prog: rule is RunResult::rule (-1 when no rule held, counted
// as the program's default). Lock-free after the program's first run.
void rule_stats_count(const policy::Program& prog, int32_t rule, policy::Verdict v) noexcept;

// Counters of prog's rules, index rule_count() for "no rule held"; empty when
// prog never ran.
std::vector<RuleStats> rule_stats(const policy::Program& prog);

// In a fork child: the table's lock another thread may have held.
void rule_stats_after_fork_child() noexcept;

}  // namespace sockshim
