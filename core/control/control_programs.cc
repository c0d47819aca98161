#include "core/control/control_programs.h"

#include <algorithm>
#include <vector>

#include "core/bpfsys/bpf_objects.h"
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
  json p = {{"name", prog.name()},
            {"type", policy::program_type_name(prog.type())},
            {"runs", runs},
            {"rules", std::move(out)}};
  if (prog.is_bytecode()) {
    // No rules: its one row counts every run, as its return value decided.
    p["rules"][0]["if"] = "bytecode";
    p["rules"][0]["do"] = "its return value";
    p["bytecode"] = true;
    p["faults"] = prog.faults();
  }
  return p;
}

// The verdict programs attached to a sockmap, each once.
void add_attached(const MapProgs& progs, std::vector<const policy::Program*>* seen) {
  for (const policy::Program* p : {progs.msg_parser, progs.stream_verdict, progs.skb_verdict})
    if (p && std::find(seen->begin(), seen->end(), p) == seen->end()) seen->push_back(p);
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
  std::vector<const policy::Program*> progs;
  for (const auto& prog : lp->policy->programs)
    if (prog->is_verdict()) progs.push_back(prog.get());
  // Programs attached to the maps that are not the policy's own: bytecode
  // ones, loaded through bpf() or attached by the C API.
  for (BpfMap* m : lp->map_by_index)
    if (auto* sm = dynamic_cast<SockMapBase*>(m)) add_attached(sm->progs(), &progs);
  for (const auto& obj : bpfsys::map_objects())
    if (auto* sm = dynamic_cast<SockMapBase*>(obj->map.get())) add_attached(sm->progs(), &progs);
  for (const policy::Program* p : progs) out.push_back(program_stats(*p, *lp->policy));
  return out;
}

}  // namespace sockshim::control
