#include "core/control/map_text.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>

#include "core/control/control_error.h"
#include "core/control/socket_index.h"
#include "policy/vocabulary.h"

namespace sockshim::control {

using nlohmann::json;
using policy::KeyField;
using policy::Literal;

json decode_key(const policy::MapSpec& spec, const unsigned char* key) {
  json out = json::object();
  size_t off = 0;
  for (KeyField f : spec.key) {
    const unsigned char* p = key + off;
    uint32_t u32;
    memcpy(&u32, p, sizeof u32);
    const policy::KeyFieldInfo& field = policy::info(f);
    const std::string name(field.name);
    switch (field.literal) {
      case Literal::ip4:
        out[name] = ip4_text(p);
        break;
      case Literal::ip6:
        out[name] = ip6_text(p);
        break;
      case Literal::u64: {
        uint64_t u64;
        memcpy(&u64, p, sizeof u64);
        out[name] = u64;
        break;
      }
      default:
        out[name] = u32;
    }
    off += field.size;
  }
  return out;
}

std::vector<unsigned char> encode_key(const policy::MapSpec& spec, const std::string& text) {
  std::map<std::string, std::string> given;
  std::stringstream ss(text);
  for (std::string part; std::getline(ss, part, ',');) {
    size_t eq = part.find('=');
    if (eq == std::string::npos)
      throw ControlError("EINVAL",
                         "key \"" + text + "\": expected field=value pairs separated by commas");
    given[part.substr(0, eq)] = part.substr(eq + 1);
  }
  std::vector<unsigned char> key(spec.key_size);
  size_t off = 0;
  for (KeyField f : spec.key) {
    const policy::KeyFieldInfo& field = policy::info(f);
    const std::string name(field.name);
    auto it = given.find(name);
    if (it == given.end()) throw ControlError("EINVAL", "key: missing field \"" + name + "\"");
    const std::string& v = it->second;
    unsigned char* p = key.data() + off;
    bool ok = true;
    try {
      switch (field.literal) {
        case Literal::ip4:
          ok = inet_pton(AF_INET, v.c_str(), p) == 1;
          break;
        case Literal::ip6:
          ok = inet_pton(AF_INET6, v.c_str(), p) == 1;
          break;
        case Literal::u64: {
          uint64_t n = std::stoull(v, nullptr, 0);
          memcpy(p, &n, sizeof n);
          break;
        }
        default: {
          uint32_t n = static_cast<uint32_t>(std::stoul(v, nullptr, 0));
          memcpy(p, &n, sizeof n);
        }
      }
    } catch (const std::logic_error&) {
      ok = false;
    }
    if (!ok) throw ControlError("EINVAL", "key: \"" + v + "\" is not a valid " + name);
    given.erase(it);
    off += field.size;
  }
  if (!given.empty())
    throw ControlError("EINVAL", "key: field \"" + given.begin()->first +
                                     "\" is not in the layout of " + spec.name);
  return key;
}

json decode_value(const policy::MapSpec& spec, const unsigned char* value) {
  json out = json::object();
  for (const policy::ValueField& f : spec.value) {
    const unsigned char* p = value + f.offset;
    uint64_t n = 0;
    switch (f.kind) {
      case policy::ValueField::Kind::bytes: {
        std::string hex;
        for (uint32_t i = 0; i < f.size; ++i) {
          char b[3];
          snprintf(b, sizeof b, "%02x", p[i]);
          hex += b;
        }
        out[f.name] = hex;
        continue;
      }
      case policy::ValueField::Kind::i64: {
        int64_t s;
        memcpy(&s, p, sizeof s);
        out[f.name] = s;
        continue;
      }
      default:
        memcpy(&n, p, f.size);  // little-endian host: the low bytes
    }
    out[f.name] = n;
  }
  return out;
}

std::vector<unsigned char> encode_value(const policy::MapSpec& spec, const std::string& text) {
  std::vector<unsigned char> value(spec.value_size);
  std::stringstream ss(text);
  for (std::string part; std::getline(ss, part, ',');) {
    size_t eq = part.find('=');
    std::string name = part.substr(0, eq);
    auto f = std::find_if(spec.value.begin(), spec.value.end(),
                          [&](const policy::ValueField& v) { return v.name == name; });
    if (eq == std::string::npos || f == spec.value.end())
      throw ControlError("EINVAL",
                         "value: \"" + part + "\" is not field=number for a field of " + spec.name);
    if (f->kind == policy::ValueField::Kind::bytes)
      throw ControlError("EINVAL",
                         "value: field \"" + name + "\" is bytes[N]; set it from a program");
    uint64_t n;
    try {
      n = std::stoull(part.substr(eq + 1), nullptr, 0);
    } catch (const std::logic_error&) {
      throw ControlError("EINVAL", "value: \"" + part + "\" is not field=number");
    }
    memcpy(value.data() + f->offset, &n, f->size);
  }
  return value;
}

}  // namespace sockshim::control
