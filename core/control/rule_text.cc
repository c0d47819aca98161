#include "core/control/rule_text.h"

#include <cstdio>
#include <cstring>

#include "policy/vocabulary.h"

namespace sockshim {
namespace {

using policy::Compare;
using policy::Cond;
using policy::CtxField;
using policy::Literal;

// A value as the policy would write it: addresses dotted (compared in host
// order), the inet families by name.
std::string value_text(CtxField f, uint64_t v) {
  const Literal lit = policy::info(f).literal;
  if (lit == Literal::ip4) {
    char b[16];
    snprintf(b, sizeof b, "%u.%u.%u.%u", unsigned(v >> 24 & 255), unsigned(v >> 16 & 255),
             unsigned(v >> 8 & 255), unsigned(v & 255));
    return b;
  }
  if (lit == Literal::family && (v == AF_INET || v == AF_INET6))
    return std::string(policy::find_value(policy::kFamilies, v)->name);
  return std::to_string(v);
}

std::string compare_text(const std::string& lhs, CtxField f, const Compare& c) {
  auto val = [&](uint64_t v) {
    return c.is_signed ? std::to_string(static_cast<int64_t>(v)) : value_text(f, v);
  };
  switch (policy::info(c.op).args) {
    case policy::CompareArgs::one:
      return lhs + std::string(policy::info(c.op).symbol) + val(c.a);
    case policy::CompareArgs::pair:
      return lhs + " in [" + val(c.a) + ".." + val(c.b) + "]";
    case policy::CompareArgs::list: {
      std::string s;
      for (uint64_t v : c.set) s += (s.empty() ? "" : ",") + val(v);
      return lhs + " in {" + s + "}";
    }
  }
  return lhs + "?";
}

std::string compares_text(const std::string& lhs, CtxField f, const std::vector<Compare>& cmps) {
  std::string s;
  for (const Compare& c : cmps) s += (s.empty() ? "" : " and ") + compare_text(lhs, f, c);
  return s;
}

// Printable bytes as they are, the others escaped.
std::string quoted(const std::string& bytes) {
  std::string s = "\"";
  for (unsigned char ch : bytes) {
    if (ch == '"' || ch == '\\') {
      s += '\\';
      s += static_cast<char>(ch);
    } else if (ch >= 0x20 && ch < 0x7f) {
      s += static_cast<char>(ch);
    } else {
      char b[5];
      snprintf(b, sizeof b, "\\x%02x", ch);
      s += b;
    }
  }
  return s + "\"";
}

std::string map_name(const policy::Policy& pol, uint32_t i) {
  return i < pol.maps.size() ? pol.maps[i].name : "map#" + std::to_string(i);
}

std::string cond_text(const Cond& c, const policy::Policy& pol);

std::string join(const std::vector<Cond>& conds, const char* sep, const policy::Policy& pol) {
  std::string s;
  for (const Cond& c : conds) s += (s.empty() ? "" : sep) + cond_text(c, pol);
  return s;
}

std::string cond_text(const Cond& c, const policy::Policy& pol) {
  switch (c.kind) {
    case Cond::Kind::all:
      return "(" + join(c.children, " and ", pol) + ")";
    case Cond::Kind::any:
      return "(" + join(c.children, " or ", pol) + ")";
    case Cond::Kind::not_:
      return "not (" + join(c.children, " and ", pol) + ")";
    case Cond::Kind::field:
      return compares_text(policy::ctx_field_name(c.field), c.field, c.cmps);
    case Cond::Kind::ip6:
      return std::string(policy::ctx_field_name(c.field)) + (c.negate ? " not in " : " in ") +
             std::to_string(c.ip6_set.size()) + " addresses";
    case Cond::Kind::data_prefix:
    case Cond::Kind::data_contains:
    case Cond::Kind::data_equals:
      return "data " + std::string(policy::data_matcher(c).name) + " " + quoted(c.bytes);
    case Cond::Kind::data_int:
      return compares_text(
          "data[" + std::to_string(c.at) + "]." + std::string(policy::data_matcher(c).name),
          CtxField::size, c.cmps);
    case Cond::Kind::storage:
      return compares_text("storage " + map_name(pol, c.map) + "." + c.value.name, CtxField::size,
                           c.cmps);
  }
  return "?";
}

// A redirect's sockmap index, when a literal, and its ingress flag.
std::string redirect_text(const policy::Action& a) {
  std::string t;
  const auto& parts = a.key.parts;
  if (parts.size() == 1 && !parts[0].from_ctx && parts[0].size == 4) {
    uint32_t k;
    memcpy(&k, parts[0].literal.data(), sizeof k);
    t += "[" + std::to_string(k) + "]";
  }
  if (a.flags & policy::BPF_F_INGRESS) t += " ingress";
  return t;
}

}  // namespace

std::string rule_if_text(const policy::Rule& rule, const policy::Policy& pol) {
  return rule.conds.empty() ? "always" : join(rule.conds, " and ", pol);
}

std::string rule_do_text(const policy::Rule& rule, const policy::Policy& pol) {
  using Args = policy::ActionArgs;
  std::string s;
  for (const policy::Action& a : rule.actions) {
    const policy::ActionInfo& info = policy::info(a.kind);
    std::string t(info.name);
    switch (info.args) {
      case Args::map_key:
        t += " " + map_name(pol, a.map);
        if (info.flags == policy::ActionFlags::redirect) t += redirect_text(a);
        break;
      case Args::count:
        t += " " + std::to_string(a.a);
        break;
      case Args::push:  // start, bytes (the fill's length)
        t += " " + std::to_string(a.a) + "," + std::to_string(a.bytes.size());
        break;
      case Args::range:  // start, len or end
        t += " " + std::to_string(a.a) + "," + std::to_string(a.b);
        break;
      case Args::storage:
      case Args::map:
        t += " " + map_name(pol, a.map);
        break;
      case Args::none:
      case Args::text:
        break;
    }
    s += (s.empty() ? "" : ", ") + t;
  }
  return s.empty() ? "-" : s;
}

}  // namespace sockshim
