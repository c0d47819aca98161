#include "core/psock/psock_stats.h"

#include <sched.h>

#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>

namespace sockshim {
namespace {

constexpr auto kRelaxed = std::memory_order_relaxed;

struct RuleCounters {
  std::atomic<uint64_t> hits{0}, passed{0}, dropped{0}, redirected{0};
};

// A program's counters: rule_count() + 1 slots, the last for "no rule held".
// Never freed: a run may still hold a pointer (programs are never freed either).
struct ProgCounters {
  size_t slots = 0;
  std::unique_ptr<RuleCounters[]> rules;
};

struct RuleTable {
  std::mutex lock;
  std::unordered_map<const policy::Program*, ProgCounters*> by_prog;
};

// Leaked on purpose: sends may run while the process exits.
RuleTable& table() noexcept {
  static RuleTable* t = new RuleTable;
  return *t;
}

ProgCounters* find(const policy::Program& prog, bool create) noexcept {
  RuleTable& t = table();
  std::lock_guard g(t.lock);
  try {
    auto it = t.by_prog.find(&prog);
    if (it != t.by_prog.end() && it->second->slots == prog.rule_count() + 1) return it->second;
    if (!create) return nullptr;
    auto* pc = new ProgCounters;
    pc->slots = prog.rule_count() + 1;
    pc->rules.reset(new RuleCounters[pc->slots]);
    t.by_prog[&prog] = pc;
    return pc;
  } catch (...) {
    return nullptr;  // out of memory: the run goes on uncounted
  }
}

}  // namespace

DirSnapshot dir_snapshot(const PsockDirStats& s) noexcept {
  DirSnapshot d;
  for (int tries = 0;; ++tries) {
    uint32_t q = s.seq.load(std::memory_order_acquire);
    d = {s.in.load(kRelaxed),     s.pushed.load(kRelaxed),  s.popped.load(kRelaxed),
         s.passed.load(kRelaxed), s.dropped.load(kRelaxed), s.redirected.load(kRelaxed),
         s.runs.load(kRelaxed),   s.held.load(kRelaxed)};
    std::atomic_thread_fence(std::memory_order_acquire);
    if ((q & 1) == 0 && s.seq.load(kRelaxed) == q) return d;
    // The writer was preempted inside its few stores: let it finish.
    if (tries > 64) sched_yield();
    if (tries > 100000) return d;
  }
}

void rule_stats_count(const policy::Program& prog, int32_t rule, policy::Verdict v) noexcept {
  // The program this thread counted last: a send loop finds it without the lock.
  // initial-exec: a preloaded library's TLS must not allocate on first use.
  [[gnu::tls_model("initial-exec")]] thread_local const policy::Program* last = nullptr;
  [[gnu::tls_model("initial-exec")]] thread_local ProgCounters* last_counters = nullptr;
  ProgCounters* pc = last == &prog ? last_counters : find(prog, true);
  if (!pc) return;
  last = &prog;
  last_counters = pc;
  size_t i = rule >= 0 && static_cast<size_t>(rule) < pc->slots - 1 ? static_cast<size_t>(rule)
                                                                    : pc->slots - 1;
  RuleCounters& r = pc->rules[i];
  r.hits.fetch_add(1, kRelaxed);
  (v == policy::Verdict::pass   ? r.passed
   : v == policy::Verdict::drop ? r.dropped
                                : r.redirected)
      .fetch_add(1, kRelaxed);
}

std::vector<RuleStats> rule_stats(const policy::Program& prog) {
  ProgCounters* pc = find(prog, false);
  std::vector<RuleStats> out;
  if (!pc) return out;
  out.reserve(pc->slots);
  for (size_t i = 0; i < pc->slots; ++i) {
    const RuleCounters& r = pc->rules[i];
    out.push_back({r.hits.load(kRelaxed), r.passed.load(kRelaxed), r.dropped.load(kRelaxed),
                   r.redirected.load(kRelaxed)});
  }
  return out;
}

void rule_stats_after_fork_child() noexcept {
  new (&table().lock) std::mutex();
}

}  // namespace sockshim
