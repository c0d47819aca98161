#include "core/psock_stats.h"

#include <mutex>
#include <new>
#include <unordered_map>

namespace sockshim {
namespace {

struct RuleTable {
  std::mutex lock;
  std::unordered_map<const policy::Program*, std::vector<RuleStats>> by_prog;
};

// Leaked on purpose: sends may run while the process exits.
RuleTable& table() noexcept {
  static RuleTable* t = new RuleTable;
  return *t;
}

}  // namespace

void rule_stats_count(const policy::Program& prog, int32_t rule, policy::Verdict v) noexcept {
  RuleTable& t = table();
  std::lock_guard g(t.lock);
  try {
    auto& rules = t.by_prog[&prog];
    if (rules.empty()) rules.resize(prog.rule_count() + 1);
    RuleStats& r =
        rules[rule >= 0 && static_cast<size_t>(rule) < prog.rule_count() ? static_cast<size_t>(rule)
                                                                         : prog.rule_count()];
    ++r.hits;
    ++(v == policy::Verdict::pass   ? r.passed
       : v == policy::Verdict::drop ? r.dropped
                                    : r.redirected);
  } catch (...) {
    // Out of memory: a counter is lost, the send goes on.
  }
}

std::vector<RuleStats> rule_stats(const policy::Program& prog) {
  RuleTable& t = table();
  std::lock_guard g(t.lock);
  auto it = t.by_prog.find(&prog);
  return it == t.by_prog.end() ? std::vector<RuleStats>{} : it->second;
}

void rule_stats_after_fork_child() noexcept {
  new (&table().lock) std::mutex();
}

}  // namespace sockshim
