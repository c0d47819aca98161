// The "key" of redirect, map_update and map_delete: a sockmap index, or a
// sockhash key built from "self", "peer", a key object or an array.
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "policy/loader.h"

namespace sockshim::policy {

bool Loader::load_key(const json& v, const std::string& ptr, uint32_t map, KeySpec& out) {
  const MapSpec& m = policy_->maps[map];
  if (m.type == MapType::sockmap) return load_sockmap_key(v, ptr, m, out);
  out.size = m.key_size;
  if (v.is_string() && (v == "self" || v == "peer"))
    return load_tuple_key(v == "peer", ptr, m, out);
  if (v.is_array()) {
    if (v.size() != m.key.size()) {
      error(ptr, "expected " + std::to_string(m.key.size()) + " values, one per key field of map " +
                     quote(m.name));
      return false;
    }
    bool ok = true;
    for (size_t i = 0; i < v.size(); ++i) {
      KeyPart part;
      ok = load_key_part(m.key[i], v[i], at(ptr, std::to_string(i)), part) && ok;
      out.parts.push_back(part);
    }
    return ok;
  }
  if (!v.is_object()) {
    error(ptr, "expected \"self\", \"peer\", a key object or an array (map " + quote(m.name) +
                   " is a sockhash)");
    return false;
  }
  return load_key_object(v, ptr, m, out);
}

bool Loader::load_sockmap_key(const json& v, const std::string& ptr, const MapSpec& m,
                              KeySpec& out) {
  KeyPart part;
  if (v.is_string() && (v == "self" || v == "peer")) {
    error(ptr, "map " + quote(m.name) + " is a sockmap: its key is an index, not " +
                   quote(v.get<std::string>()));
    return false;
  }
  if (!v.is_string() && !v.is_number()) {
    error(ptr, "expected an index (a sockmap key)");
    return false;
  }
  if (!load_key_part(KeyField::u32, v, ptr, part)) return false;
  out.parts.push_back(part);
  out.size = 4;
  return true;
}

// "self" or "peer": each key field from the context field it names.
bool Loader::load_tuple_key(bool peer, const std::string& ptr, const MapSpec& m, KeySpec& out) {
  for (KeyField kf : m.key) {
    const KeyFieldInfo& k = info(kf);
    const std::optional<CtxField> f = peer ? k.peer : k.self;
    if (!f) {
      error(ptr, "key field " + quote(k.name) + " of map " + quote(m.name) +
                     " has no context field: use a key object");
      return false;
    }
    KeyPart part;
    part.size = k.size;
    part.from_ctx = true;
    part.field = *f;
    out.parts.push_back(part);
  }
  return true;
}

bool Loader::load_key_object(const json& v, const std::string& ptr, const MapSpec& m,
                             KeySpec& out) {
  std::vector<std::string_view> names;
  for (KeyField kf : m.key) names.push_back(info(kf).name);
  for (size_t i = 0; i < names.size(); ++i)
    if (std::count(names.begin(), names.end(), names[i]) > 1) {
      error(ptr,
            "the key of map " + quote(m.name) + " repeats " + quote(names[i]) + ": use an array");
      return false;
    }
  bool ok = true;
  for (auto it = v.begin(); it != v.end(); ++it)
    if (std::find(names.begin(), names.end(), it.key()) == names.end()) {
      error_key(at(ptr, it.key()), quote(it.key()) + " is not a field of the key of map " +
                                       quote(m.name) + " (" + quoted_list(names) + ")");
      ok = false;
    }
  for (size_t i = 0; i < m.key.size(); ++i) {
    KeyPart part;
    const std::string name(names[i]);
    if (!v.contains(name)) {
      error(ptr, "missing key field " + quote(name));
      ok = false;
    } else {
      ok = load_key_part(m.key[i], v[name], at(ptr, name), part) && ok;
    }
    out.parts.push_back(part);
  }
  return ok;
}

bool Loader::load_key_part(KeyField kf, const json& v, const std::string& ptr, KeyPart& out) {
  out.size = info(kf).size;
  if (v.is_string()) return load_key_text(kf, v.get<std::string>(), ptr, out);
  if (info(kf).literal == Literal::ip6) {
    error(ptr, "expected a context field name or an IPv6 address");
    return false;
  }
  auto n = get_uint(v, ptr, 0, out.size == 8 ? UINT64_MAX : UINT32_MAX);
  if (!n) return false;
  if (out.size == 8) {
    memcpy(out.literal.data(), &*n, 8);
  } else {
    const auto x = static_cast<uint32_t>(*n);
    memcpy(out.literal.data(), &x, 4);
  }
  return true;
}

// A key field written as text: a context field's name, or an address.
bool Loader::load_key_text(KeyField kf, const std::string& s, const std::string& ptr,
                           KeyPart& out) {
  const Literal slot = info(kf).literal;
  if (const CtxFieldInfo* f = find_name(kCtxFieldInfo, s)) {
    if (std::string why = unavailable(s, f->field); !why.empty()) {
      error(ptr, std::move(why));
      return false;
    }
    if ((f->literal == Literal::ip6) != (slot == Literal::ip6)) {
      error(ptr, "key field " + quote(info(kf).name) + " is " + std::to_string(out.size) +
                     " bytes; context field " + quote(s) + " does not fit");
      return false;
    }
    out.from_ctx = true;
    out.field = f->field;
    return true;
  }
  in_addr a4;
  if (slot == Literal::ip4 && inet_pton(AF_INET, s.c_str(), &a4) == 1) {
    memcpy(out.literal.data(), &a4.s_addr, 4);
    return true;
  }
  in6_addr a6;
  if (slot == Literal::ip6 && inet_pton(AF_INET6, s.c_str(), &a6) == 1) {
    memcpy(out.literal.data(), &a6, 16);
    return true;
  }
  error(ptr, "expected a context field name" +
                 std::string(slot == Literal::ip4   ? ", an IPv4 address"
                             : slot == Literal::ip6 ? ", an IPv6 address"
                                                    : "") +
                 (slot == Literal::ip6 ? "" : " or an integer"));
  return false;
}

}  // namespace sockshim::policy
