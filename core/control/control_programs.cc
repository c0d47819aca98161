#include "core/control/control_programs.h"

#include <vector>

#include "core/control/rule_text.h"
#include "core/maps/loaded_policy.h"
#include "core/psock/psock_stats.h"
#include "policy/compiled.h"
#include "policy/policy.h"
#include "policy/program.h"

namespace sockshim::control {

using nlohmann::json;

namespace {

// A verdict program's counters by rule, then "default" for runs where no rule held.
json program_stats(const policy::Program& prog, const policy::Policy& pol) {
  std::vector<RuleStats> counts = rule_stats(prog);
  const auto& rules = prog.compiled().rules;
  counts.resize(rules.size() + 1);
  json out = json::array();
  uint64_t runs = 0;
  for (size_t i = 0; i <= rules.size(); ++i) {
    const RuleStats& r = counts[i];
    runs += r.hits;
    json row = {{"rule", i < rules.size() ? json(i) : json("default")},
                {"if", i < rules.size() ? rule_if_text(rules[i], pol) : "no rule held"},
                {"do", i < rules.size()                        ? rule_do_text(rules[i], pol)
                       : prog.default_ret() == policy::SK_PASS ? "pass"
                                                               : "drop"},
                {"hits", r.hits},
                {"passed", r.passed},
                {"dropped", r.dropped},
                {"redirected", r.redirected}};
    out.push_back(std::move(row));
  }
  return {{"name", prog.name()},
          {"type", policy::program_type_name(prog.type())},
          {"runs", runs},
          {"rules", std::move(out)}};
}

}  // namespace

json program_names(const MapProgs& p) {
  json out = json::object();
  if (p.msg_parser) out["sk_msg"] = p.msg_parser->name();
  if (p.stream_parser) out["stream_parser"] = p.stream_parser->name();
  if (p.stream_verdict) out["stream_verdict"] = p.stream_verdict->name();
  if (p.skb_verdict) out["skb_verdict"] = p.skb_verdict->name();
  return out;
}

json dump_programs() {
  json out = json::array();
  auto lp = current_policy();
  if (!lp) return out;
  for (const auto& prog : lp->policy->programs)
    if (prog->is_verdict()) out.push_back(program_stats(*prog, *lp->policy));
  return out;
}

}  // namespace sockshim::control
