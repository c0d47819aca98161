// The "attach" list (a program on a sockmap or sockhash in one role) and the
// "sockops" list (sockops programs in the order they run).
#include <algorithm>

#include "policy/loader.h"

namespace sockshim::policy {

void Loader::load_attach(const json& v, const std::string& ptr) {
  if (!expect_array(v, ptr)) return;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string ap = at(ptr, std::to_string(i));
    const json& a = v[i];
    if (!expect_object(a, ap)) continue;
    load_attachment(a, ap);
  }
}

void Loader::load_attachment(const json& a, const std::string& ap) {
  check_keys(a, ap, {"program", "map", "attach_type"});
  const Program* prog = nullptr;
  const std::optional<ProgramType> ptype = attach_program(a, ap, prog);
  const std::optional<uint32_t> map = attach_map(a, ap);
  const std::optional<AttachType> type = attach_type(a, ap, ptype);
  if (!prog || !map || !type) return;
  if (attach_conflict(ap, *map, *type)) return;
  policy_->attach.push_back({prog, *map, *type});
}

// The program's type, if it is a program that attaches to maps; prog is set
// when it loaded without errors (a sockops program too: the policy has an
// error then, and later entries are still checked against it).
std::optional<ProgramType> Loader::attach_program(const json& a, const std::string& ap,
                                                  const Program*& prog) {
  if (!require(a, ap, "program")) return std::nullopt;
  const std::string pp = at(ap, "program");
  auto name = get_string(a["program"], pp);
  if (!name) return std::nullopt;
  auto t = program_types_.find(*name);
  if (t == program_types_.end()) {
    error(pp, "no program named " + quote(*name));
    return std::nullopt;
  }
  if (broken_programs_.count(*name)) return std::nullopt;
  prog = policy_->program(*name);
  if (t->second == ProgramType::sockops) {
    error(pp, "program " + quote(*name) +
                  " is sockops: it runs from the \"sockops\" list, not from a map");
    return std::nullopt;
  }
  return t->second;
}

std::optional<uint32_t> Loader::attach_map(const json& a, const std::string& ap) {
  if (!require(a, ap, "map")) return std::nullopt;
  const std::string mp = at(ap, "map");
  auto name = get_string(a["map"], mp);
  if (!name || broken_maps_.count(*name)) return std::nullopt;
  const int idx = policy_->map_index(*name);
  if (idx < 0) {
    error(mp, "no map named " + quote(*name));
    return std::nullopt;
  }
  if (policy_->maps[static_cast<size_t>(idx)].type == MapType::sk_storage) {
    error(mp, "map " + quote(*name) +
                  " is a sk_storage: programs attach to a sockmap or sockhash (EOPNOTSUPP)");
    return std::nullopt;
  }
  return static_cast<uint32_t>(idx);
}

// The attach type, if it is one the program's type takes.
std::optional<AttachType> Loader::attach_type(const json& a, const std::string& ap,
                                              std::optional<ProgramType> ptype) {
  if (!require(a, ap, "attach_type")) return std::nullopt;
  const std::string tp = at(ap, "attach_type");
  auto s = get_enum(a["attach_type"], tp, names_of(kAttachTypes));
  if (!s) return std::nullopt;
  const AttachTypeInfo& type = *find_name(kAttachTypes, *s);
  if (!ptype || (type.programs & bit(*ptype))) return type.type;
  const auto want =
      names_of(kAttachTypes, [&](const AttachTypeInfo& i) { return !(i.programs & bit(*ptype)); });
  std::string wanted;
  for (std::string_view w : want) wanted += (wanted.empty() ? "" : " or ") + std::string(w);
  error(tp, std::string("program ") + quote(a["program"].get<std::string>()) + " is " +
                program_type_name(*ptype) + ": expected " + wanted + " (EINVAL)");
  return std::nullopt;
}

// The kernel replaces a program attached twice in one role; in a policy that
// is a mistake (the first would never run), so it is refused. The two skb
// verdict roles exclude each other (EBUSY).
bool Loader::attach_conflict(const std::string& ap, uint32_t map, AttachType type) {
  const std::string& map_name = policy_->maps[map].name;
  if (const Program* old = policy_->attached(map, type)) {
    error(ap, "map " + quote(map_name) + " already has " + quote(old->name()) + " as " +
                  attach_type_name(type));
    return true;
  }
  if (type != AttachType::sk_skb_stream_verdict && type != AttachType::sk_skb_verdict) return false;
  const AttachType other = type == AttachType::sk_skb_stream_verdict
                               ? AttachType::sk_skb_verdict
                               : AttachType::sk_skb_stream_verdict;
  if (!policy_->attached(map, other)) return false;
  error(at(ap, "attach_type"), "map " + quote(map_name) + " already has " +
                                   attach_type_name(other) + ": " + attach_type_name(type) +
                                   " and " + attach_type_name(other) +
                                   " exclude each other (EBUSY)");
  return true;
}

void Loader::load_sockops(const json& v, const std::string& ptr) {
  if (!expect_array(v, ptr)) return;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string sp = at(ptr, std::to_string(i));
    auto name = get_string(v[i], sp);
    if (!name) continue;
    auto t = program_types_.find(*name);
    if (t == program_types_.end()) {
      error(sp, "no program named " + quote(*name));
      continue;
    }
    if (t->second != ProgramType::sockops) {
      error(sp, "program " + quote(*name) + " is " + program_type_name(t->second) +
                    ", expected a sockops program");
      continue;
    }
    const Program* p = policy_->program(*name);
    if (!p) continue;
    if (std::find(policy_->sockops.begin(), policy_->sockops.end(), p) != policy_->sockops.end()) {
      error(sp, "program " + quote(*name) + " is already in the sockops list");
      continue;
    }
    policy_->sockops.push_back(p);
  }
}

}  // namespace sockshim::policy
