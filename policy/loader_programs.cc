// The "programs" section: each program's type, its frame (stream parsers) or
// its rules, compiled into a Program.
#include "policy/loader.h"

namespace sockshim::policy {

void Loader::load_programs(const json& v, const std::string& ptr) {
  if (!expect_object(v, ptr)) return;
  // Types first, so that references between programs (attach, sockops) and
  // the order of definitions do not matter.
  for (auto it = v.begin(); it != v.end(); ++it)
    load_program(it.key(), it.value(), at(ptr, it.key()));
  load_objects();
}

void Loader::load_program(const std::string& name, const json& v, const std::string& ptr) {
  const size_t errors_before = errors_.size();
  if (name.empty()) error_key(ptr, "a program name must not be empty");
  if (!expect_object(v, ptr)) {
    broken_programs_.insert(name);
    return;
  }
  std::optional<std::string> type;
  if (require(v, ptr, "type")) type = get_enum(v["type"], at(ptr, "type"), names_of(kProgramTypes));
  if (!type) {
    check_keys(v, ptr, {"type", "rules", "default", "frame", "sticky_drop", "object", "program"});
    broken_programs_.insert(name);
    return;
  }
  const ProgramType t = find_name(kProgramTypes, *type)->type;
  program_types_[name] = t;
  cur_type_ = t;
  if (v.contains("object") || v.contains("program")) {
    load_object_program(name, v, ptr);
    return;
  }
  needs_data_ = false;
  auto compiled = std::make_unique<CompiledProgram>();
  if (t == ProgramType::stream_parser) {
    check_keys(v, ptr, {"type", "frame"});
    if (require(v, ptr, "frame")) load_frame(v["frame"], at(ptr, "frame"), compiled->frame);
  } else {
    load_program_body(v, ptr, *compiled);
  }
  compiled->needs_data = needs_data_;
  if (errors_.size() != errors_before) {
    broken_programs_.insert(name);
    return;
  }
  policy_->programs.push_back(std::make_unique<Program>(name, t, std::move(compiled)));
}

// A program with rules: sk_msg, the sk_skb verdicts, sockops.
void Loader::load_program_body(const json& v, const std::string& ptr, CompiledProgram& out) {
  const ProgramType t = cur_type_;
  if (t == ProgramType::sockops)
    check_keys(v, ptr, {"type", "rules"});
  else if (t == ProgramType::sk_msg)
    check_keys(v, ptr, {"type", "rules", "default", "sticky_drop"});
  else
    check_keys(v, ptr, {"type", "rules", "default"});
  if (const json* sd = member(v, "sticky_drop"); sd && t == ProgramType::sk_msg) {
    if (sd->is_boolean())
      out.sticky_drop = sd->get<bool>();
    else
      error(at(ptr, "sticky_drop"), "expected true or false");
  }
  if (const json* d = member(v, "default"); d && t != ProgramType::sockops) {
    if (auto s = get_enum(*d, at(ptr, "default"), {"pass", "drop"}))
      out.default_ret = *s == "pass" ? SK_PASS : SK_DROP;
  }
  if (require(v, ptr, "rules")) load_rules(v["rules"], at(ptr, "rules"), out);
}

void Loader::load_frame(const json& v, const std::string& ptr, FrameSpec& out) {
  const auto kinds = names_of(kFrameKinds);
  if (v.is_string()) {
    if (get_enum(v, ptr, {kinds[0]})) out.kind = FrameSpec::Kind::whole;
    return;
  }
  if (!v.is_object()) {
    error(ptr, "expected " + quote(kinds[0]) + " or an object with one of " +
                   quoted_list(Names(kinds).subspan(1)));
    return;
  }
  std::vector<std::string_view> keys = kinds;
  keys.push_back("max");
  check_keys(v, ptr, keys);
  int present = 0;
  for (std::string_view k : kinds) present += v.contains(k);
  if (present != 1) {
    error(ptr, "expected exactly one of " + quoted_list(kinds));
    return;
  }
  if (const json* m = member(v, "max")) {
    if (auto n = get_uint(*m, at(ptr, "max"), 1, UINT32_MAX)) out.max = *n;
  }
  if (const json* w = member(v, "whole")) {
    if (!(w->is_boolean() && w->get<bool>())) error(at(ptr, "whole"), "expected true");
    out.kind = FrameSpec::Kind::whole;
  } else if (const json* lp = member(v, "length_prefix")) {
    out.kind = FrameSpec::Kind::length_prefix;
    load_length_prefix(*lp, at(ptr, "length_prefix"), out);
  } else if (const json* d = member(v, "delimiter")) {
    out.kind = FrameSpec::Kind::delimiter;
    if (auto b = get_bytes(*d, at(ptr, "delimiter"))) {
      if (b->empty())
        error(at(ptr, "delimiter"), "must not be empty");
      else
        out.delimiter.assign(b->begin(), b->end());
    }
  } else if (const json* f = member(v, "fixed")) {
    out.kind = FrameSpec::Kind::fixed;
    if (auto n = get_uint(*f, at(ptr, "fixed"), 1, UINT32_MAX)) out.fixed = *n;
  }
}

void Loader::load_length_prefix(const json& lp, const std::string& p, FrameSpec& out) {
  if (!expect_object(lp, p)) return;
  check_keys(lp, p, {"offset", "size", "endian", "adjust"});
  if (const json* o = member(lp, "offset")) {
    if (auto n = get_uint(*o, at(p, "offset"), 0, 65535)) out.offset = static_cast<uint32_t>(*n);
  }
  if (const json* s = member(lp, "size")) {
    const uint64_t n = s->is_number_unsigned() ? s->get<uint64_t>() : 0;
    if (n == 1 || n == 2 || n == 4 || n == 8)
      out.size = static_cast<uint32_t>(n);
    else
      error(at(p, "size"), "expected 1, 2, 4 or 8");
  }
  if (const json* e = member(lp, "endian")) {
    if (auto s = get_enum(*e, at(p, "endian"), {"big", "little"})) out.big_endian = *s == "big";
  }
  if (const json* a = member(lp, "adjust")) {
    if (auto n = get_int(*a, at(p, "adjust"))) out.adjust = *n;
  }
}

void Loader::load_rules(const json& v, const std::string& ptr, CompiledProgram& out) {
  if (!expect_array(v, ptr)) return;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string rp = at(ptr, std::to_string(i));
    const json& r = v[i];
    if (!expect_object(r, rp)) continue;
    check_keys(r, rp, {"if", "do"});
    Rule rule;
    if (const json* c = member(r, "if")) load_cond_object(*c, at(rp, "if"), rule.conds);
    if (require(r, rp, "do")) {
      const std::string dp = at(rp, "do");
      const json& d = r["do"];
      if (expect_array(d, dp))
        for (size_t j = 0; j < d.size(); ++j) {
          Action a;
          if (load_action(d[j], at(dp, std::to_string(j)), a)) rule.actions.push_back(std::move(a));
        }
    }
    out.rules.push_back(std::move(rule));
  }
}

}  // namespace sockshim::policy
