// A rule's "if": context fields, data, storage, and all/any/not groups of them.
#include <arpa/inet.h>

#include <cstring>

#include "policy/loader.h"

namespace sockshim::policy {

bool Loader::load_cond_object(const json& v, const std::string& ptr, std::vector<Cond>& out) {
  if (!expect_object(v, ptr)) return false;
  bool ok = true;
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it.key() != "description")
      ok = load_cond(it.key(), it.value(), at(ptr, it.key()), out) && ok;
  return ok;
}

bool Loader::load_cond(const std::string& key, const json& v, const std::string& ptr,
                       std::vector<Cond>& out) {
  if (key == "all" || key == "any" || key == "not") return load_group(key, v, ptr, out);
  if (key == "data") {
    if (cur_type_ == ProgramType::sockops) {
      error_key(ptr, "\"data\" is not available in sockops programs");
      return false;
    }
    needs_data_ = true;
    return load_data_cond(v, ptr, out);
  }
  if (key == "storage") {
    Cond c;
    c.kind = Cond::Kind::storage;
    if (!load_storage_cond(v, ptr, c)) return false;
    out.push_back(std::move(c));
    return true;
  }
  return load_ctx_cond(key, v, ptr, out);
}

bool Loader::load_group(const std::string& key, const json& v, const std::string& ptr,
                        std::vector<Cond>& out) {
  Cond c;
  if (key == "not") {
    c.kind = Cond::Kind::not_;
    const bool ok = load_cond_object(v, ptr, c.children);
    out.push_back(std::move(c));
    return ok;
  }
  if (!expect_array(v, ptr)) return false;
  c.kind = key == "all" ? Cond::Kind::all : Cond::Kind::any;
  bool ok = true;
  for (size_t i = 0; i < v.size(); ++i) {
    Cond child;
    child.kind = Cond::Kind::all;
    ok = load_cond_object(v[i], at(ptr, std::to_string(i)), child.children) && ok;
    // An item with one condition is that condition: one level less to walk.
    if (child.children.size() == 1)
      c.children.push_back(std::move(child.children[0]));
    else
      c.children.push_back(std::move(child));
  }
  out.push_back(std::move(c));
  return ok;
}

bool Loader::load_ctx_cond(const std::string& key, const json& v, const std::string& ptr,
                           std::vector<Cond>& out) {
  const CtxFieldInfo* f = find_name(kCtxFieldInfo, key);
  if (!f) {
    error_key(ptr, "unknown condition " + quote(key) +
                       " (expected a context field, \"data\", \"storage\", \"all\", \"any\" or "
                       "\"not\")");
    return false;
  }
  if (std::string why = unavailable(key, f->field); !why.empty()) {
    error_key(ptr, std::move(why));
    return false;
  }
  Cond c;
  c.field = f->field;
  if (!load_field_cond(f->field, v, ptr, c)) return false;
  out.push_back(std::move(c));
  return true;
}

std::optional<uint64_t> Loader::named_literal(std::span<const NamedValue> names, const json& v,
                                              const std::string& ptr) {
  if (v.is_string()) {
    for (const NamedValue& n : names)
      if (v.get<std::string>() == n.name) return n.value;
  } else if (v.is_number_unsigned()) {
    return get_uint(v, ptr, 0, UINT32_MAX);
  }
  std::vector<std::string_view> all;
  for (const NamedValue& n : names) all.push_back(n.name);
  error(ptr, one_of(all) + " or an integer");
  return std::nullopt;
}

std::optional<uint64_t> Loader::field_literal(CtxField f, const json& v, const std::string& ptr) {
  switch (info(f).literal) {
    case Literal::u16:
      return get_uint(v, ptr, 0, 65535);
    case Literal::u32:
      return get_uint(v, ptr, 0, UINT32_MAX);
    case Literal::ip4: {
      in_addr a;
      if (v.is_string() && inet_pton(AF_INET, v.get<std::string>().c_str(), &a) == 1)
        return ntohl(a.s_addr);
      error(ptr, "expected an IPv4 address in dotted form (\"127.0.0.1\")");
      return std::nullopt;
    }
    case Literal::family:
      return named_literal(kFamilies, v, ptr);
    case Literal::op:
      return named_literal(kSockOps, v, ptr);
    default:
      return std::nullopt;
  }
}

bool Loader::load_comparisons(const json& v, const std::string& ptr, bool object_only,
                              const ReadValue& value, std::vector<Compare>& out, bool is_signed) {
  if (!object_only && v.is_array()) {
    Compare c;
    c.op = Compare::Op::in;
    bool ok = true;
    for (size_t i = 0; i < v.size(); ++i) {
      auto x = value(v[i], at(ptr, std::to_string(i)));
      if (x) c.set.push_back(*x);
      ok = ok && x;
    }
    out.push_back(std::move(c));
    return ok;
  }
  if (!object_only && !v.is_object()) {
    auto x = value(v, ptr);
    if (!x) return false;
    out.push_back({Compare::Op::eq, is_signed, *x});
    return true;
  }
  if (!v.is_object()) {
    error(ptr, std::string("expected an object, found ") + type_word(v));
    return false;
  }
  bool ok = true;
  size_t n = 0;
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string& k = it.key();
    if (object_only && (k == "map" || k == "field" || k == "description")) continue;
    ++n;
    ok = load_comparison(k, it.value(), at(ptr, k), value, out, is_signed) && ok;
  }
  if (n == 0) {
    error(ptr, "expected at least one comparison (" + quoted_list(names_of(kCompares)) + ")");
    return false;
  }
  return ok;
}

// One key of a comparison object: "eq": V, "in": [...], "range": [lo, hi].
bool Loader::load_comparison(const std::string& k, const json& v, const std::string& p,
                             const ReadValue& value, std::vector<Compare>& out, bool is_signed) {
  const CompareInfo* c = find_name(kCompares, k);
  if (!c) {
    error_key(p, "unknown comparison " + quote(k) + " (" + one_of(names_of(kCompares)) + ")");
    return false;
  }
  switch (c->args) {
    case CompareArgs::list:
      if (!expect_array(v, p)) return false;
      return load_comparisons(v, p, false, value, out, is_signed);
    case CompareArgs::pair: {
      if (!v.is_array() || v.size() != 2) {
        error(p, "expected [lo, hi]");
        return false;
      }
      auto lo = value(v[0], at(p, "0"));
      auto hi = value(v[1], at(p, "1"));
      if (!lo || !hi) return false;
      out.push_back({c->op, is_signed, *lo, *hi});
      return true;
    }
    case CompareArgs::one:
      break;
  }
  auto x = value(v, p);
  if (!x) return false;
  out.push_back({c->op, is_signed, *x});
  return true;
}

bool Loader::load_field_cond(CtxField f, const json& v, const std::string& ptr, Cond& out) {
  if (info(f).literal == Literal::ip6) return load_ip6_cond(v, ptr, out);
  out.kind = Cond::Kind::field;
  return load_comparisons(
      v, ptr, false, [&](const json& x, const std::string& p) { return field_literal(f, x, p); },
      out.cmps);
}

bool Loader::load_ip6_cond(const json& v, const std::string& ptr, Cond& out) {
  out.kind = Cond::Kind::ip6;
  auto parse6 = [&](const json& x, const std::string& p) -> bool {
    in6_addr a;
    if (x.is_string() && inet_pton(AF_INET6, x.get<std::string>().c_str(), &a) == 1) {
      std::array<uint8_t, 16> b;
      memcpy(b.data(), &a, 16);
      out.ip6_set.push_back(b);
      return true;
    }
    error(p, "expected an IPv6 address (\"::1\")");
    return false;
  };
  if (v.is_string()) return parse6(v, ptr);
  const json* list = &v;
  std::string lp = ptr;
  if (v.is_object()) {
    const CompareInfo* c = v.size() == 1 ? find_name(kCompares, v.begin().key()) : nullptr;
    if (!c || !c->ip6) {
      const auto ops = names_of(kCompares, [](const CompareInfo& i) { return !i.ip6; });
      error(ptr, "an IPv6 field compares only with " + quoted_or(ops));
      return false;
    }
    lp = at(ptr, c->name);
    list = &v.begin().value();
    out.negate = c->op == Compare::Op::ne;
    if (c->args != CompareArgs::list) return parse6(*list, lp);
  }
  if (!expect_array(*list, lp)) return false;
  bool ok = true;
  for (size_t i = 0; i < list->size(); ++i)
    ok = parse6((*list)[i], at(lp, std::to_string(i))) && ok;
  return ok;
}

bool Loader::load_data_cond(const json& v, const std::string& ptr, std::vector<Cond>& out) {
  if (!expect_object(v, ptr)) return false;
  std::vector<std::string_view> keys = names_of(kDataBytes);
  keys.push_back("at");
  for (const DataMatcherInfo& m : kDataInts) keys.push_back(m.name);
  bool ok = check_keys(v, ptr, keys);
  size_t n = 0;
  for (const DataMatcherInfo& m : kDataBytes)
    if (const json* x = member(v, m.name)) {
      ++n;
      auto b = get_bytes(*x, at(ptr, m.name));
      if (!b) {
        ok = false;
        continue;
      }
      Cond c;
      c.kind = m.kind;
      c.bytes = std::move(*b);
      out.push_back(std::move(c));
    }
  const size_t ints_before = n;
  ok = load_data_ints(v, ptr, out, n) && ok;
  if (v.contains("at") && n == ints_before) {
    error_key(at(ptr, "at"), "\"at\" needs one of " + quoted_list(names_of(kDataInts)));
    return false;
  }
  if (n == 0 && ok) {
    error(ptr,
          "expected one of " + quoted_list(names_of(kDataBytes)) + ", or \"at\" with an integer");
    return false;
  }
  return ok;
}

// The integer matchers of a data condition; n counts them.
bool Loader::load_data_ints(const json& v, const std::string& ptr, std::vector<Cond>& out,
                            size_t& n) {
  bool ok = true;
  for (const DataMatcherInfo& m : kDataInts) {
    const json* x = member(v, m.name);
    if (!x) continue;
    ++n;
    Cond c;
    c.kind = Cond::Kind::data_int;
    c.width = m.width;
    c.big_endian = m.big_endian;
    const uint64_t max = m.width == 1 ? 0xff : m.width == 2 ? 0xffff : 0xffffffff;
    if (!load_comparisons(
            *x, at(ptr, m.name), false,
            [&](const json& y, const std::string& p) { return get_uint(y, p, 0, max); }, c.cmps))
      ok = false;
    if (const json* a = member(v, "at")) {
      if (auto off = get_uint(*a, at(ptr, "at"), 0, UINT32_MAX))
        c.at = static_cast<uint32_t>(*off);
      else
        ok = false;
    } else {
      error(at(ptr, m.name), quote(m.name) + " needs \"at\", the offset of the integer");
      ok = false;
    }
    out.push_back(std::move(c));
  }
  return ok;
}

bool Loader::load_storage_cond(const json& v, const std::string& ptr, Cond& out) {
  if (!expect_object(v, ptr)) return false;
  auto map = map_ref(v, ptr, {MapType::sk_storage});
  const bool has_field = require(v, ptr, "field");
  if (!map) return false;
  out.map = *map;
  if (!has_field) return false;
  const ValueField* f = storage_field(*map, v["field"], at(ptr, "field"));
  if (!f) return false;
  if (f->kind == ValueField::Kind::bytes) {
    error(at(ptr, "field"),
          "field " + quote(f->name) + " is bytes[N]: only integer fields compare");
    return false;
  }
  out.value = *f;
  const bool is_signed = f->kind == ValueField::Kind::i64;
  const uint64_t max = f->size == 8 ? UINT64_MAX : (uint64_t{1} << (8 * f->size)) - 1;
  return load_comparisons(
      v, ptr, true,
      [&](const json& x, const std::string& p) -> std::optional<uint64_t> {
        if (is_signed) {
          auto n = get_int(x, p);
          if (n) return static_cast<uint64_t>(*n);
          return std::nullopt;
        }
        return get_uint(x, p, 0, max);
      },
      out.cmps, is_signed);
}

}  // namespace sockshim::policy
