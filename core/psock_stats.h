// Send-path counters: per psock (in, passed, dropped, redirected, queued) and
// per program rule (how often each rule's `if` held and what the run decided).
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "policy/program.h"

namespace sockshim {

struct PsockStats {
  std::atomic<uint64_t> in{0};          // verdict runs on this psock's sends
  std::atomic<uint64_t> passed{0};      // runs that returned PASS
  std::atomic<uint64_t> dropped{0};     // runs that returned DROP
  std::atomic<uint64_t> redirected{0};  // runs that returned REDIRECT
  std::atomic<uint64_t> queued{0};      // bytes redirected into this psock's ingress queue

  void reset() noexcept {
    for (auto* c : {&in, &passed, &dropped, &redirected, &queued})
      c->store(0, std::memory_order_relaxed);
  }
  void count(policy::Verdict v) noexcept {
    in.fetch_add(1, std::memory_order_relaxed);
    (v == policy::Verdict::pass   ? passed
     : v == policy::Verdict::drop ? dropped
                                  : redirected)
        .fetch_add(1, std::memory_order_relaxed);
  }
};

struct RuleStats {
  uint64_t hits = 0;  // runs in which this rule's `if` held
  uint64_t passed = 0, dropped = 0, redirected = 0;
};

// Records one run of prog: rule is RunResult::rule (-1 when no rule held, counted
// as the program's default).
void rule_stats_count(const policy::Program& prog, int32_t rule, policy::Verdict v) noexcept;

// Counters of prog's rules, index rule_count() for "no rule held"; empty when
// prog never ran.
std::vector<RuleStats> rule_stats(const policy::Program& prog);

// In a fork child: the table's lock another thread may have held.
void rule_stats_after_fork_child() noexcept;

}  // namespace sockshim
