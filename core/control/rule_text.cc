#include "core/control/rule_text.h"

#include <cstdio>
#include <cstring>

namespace sockshim {
namespace {

using policy::Compare;
using policy::Cond;
using policy::CtxField;

const char* field_name(CtxField f) {
  static constexpr const char* kNames[] = {"family",     "local_ip4",  "remote_ip4",  "local_ip6",
                                           "remote_ip6", "local_port", "remote_port", "size",
                                           "len",        "op"};
  return kNames[static_cast<size_t>(f)];
}

// A value as the policy would write it: addresses dotted (compared in host
// order), families by name.
std::string value_text(CtxField f, uint64_t v) {
  if (f == CtxField::local_ip4 || f == CtxField::remote_ip4) {
    char b[16];
    snprintf(b, sizeof b, "%u.%u.%u.%u", unsigned(v >> 24 & 255), unsigned(v >> 16 & 255),
             unsigned(v >> 8 & 255), unsigned(v & 255));
    return b;
  }
  if (f == CtxField::family && (v == 2 || v == 10)) return v == 2 ? "AF_INET" : "AF_INET6";
  return std::to_string(v);
}

std::string compare_text(const std::string& lhs, CtxField f, const Compare& c) {
  using Op = Compare::Op;
  auto val = [&](uint64_t v) {
    return c.is_signed ? std::to_string(static_cast<int64_t>(v)) : value_text(f, v);
  };
  switch (c.op) {
    case Op::eq:
      return lhs + "=" + val(c.a);
    case Op::ne:
      return lhs + "!=" + val(c.a);
    case Op::lt:
      return lhs + "<" + val(c.a);
    case Op::le:
      return lhs + "<=" + val(c.a);
    case Op::gt:
      return lhs + ">" + val(c.a);
    case Op::ge:
      return lhs + ">=" + val(c.a);
    case Op::range:
      return lhs + " in [" + val(c.a) + ".." + val(c.b) + "]";
    case Op::in: {
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
      return compares_text(field_name(c.field), c.field, c.cmps);
    case Cond::Kind::ip6:
      return std::string(field_name(c.field)) + (c.negate ? " not in " : " in ") +
             std::to_string(c.ip6_set.size()) + " addresses";
    case Cond::Kind::data_prefix:
      return "data prefix " + quoted(c.bytes);
    case Cond::Kind::data_contains:
      return "data contains " + quoted(c.bytes);
    case Cond::Kind::data_equals:
      return "data equals " + quoted(c.bytes);
    case Cond::Kind::data_int: {
      std::string kind =
          c.width == 1 ? "u8"
                       : std::string(c.big_endian ? "be" : "le") + std::to_string(c.width * 8);
      return compares_text("data[" + std::to_string(c.at) + "]." + kind, CtxField::size, c.cmps);
    }
    case Cond::Kind::storage:
      return compares_text("storage " + map_name(pol, c.map) + "." + c.value.name, CtxField::size,
                           c.cmps);
  }
  return "?";
}

}  // namespace

std::string rule_if_text(const policy::Rule& rule, const policy::Policy& pol) {
  return rule.conds.empty() ? "always" : join(rule.conds, " and ", pol);
}

std::string rule_do_text(const policy::Rule& rule, const policy::Policy& pol) {
  using Kind = policy::Action::Kind;
  std::string s;
  for (const policy::Action& a : rule.actions) {
    std::string t = policy::action_name(a.kind);
    switch (a.kind) {
      case Kind::redirect: {
        t += " " + map_name(pol, a.map);
        const auto& parts = a.key.parts;
        if (parts.size() == 1 && !parts[0].from_ctx && parts[0].size == 4) {
          uint32_t k;
          memcpy(&k, parts[0].literal.data(), sizeof k);
          t += "[" + std::to_string(k) + "]";
        }
        if (a.flags & policy::BPF_F_INGRESS) t += " ingress";
        break;
      }
      case Kind::apply_bytes:
      case Kind::cork_bytes:
        t += " " + std::to_string(a.a);
        break;
      case Kind::push_data:  // start, bytes (the fill's length)
        t += " " + std::to_string(a.a) + "," + std::to_string(a.bytes.size());
        break;
      case Kind::pop_data:   // start, len
      case Kind::pull_data:  // start, end
        t += " " + std::to_string(a.a) + "," + std::to_string(a.b);
        break;
      case Kind::storage:
      case Kind::storage_delete:
      case Kind::map_update:
      case Kind::map_delete:
        t += " " + map_name(pol, a.map);
        break;
      default:
        break;
    }
    s += (s.empty() ? "" : ", ") + t;
  }
  return s.empty() ? "-" : s;
}

}  // namespace sockshim
