#include "core/control/control_maps.h"

#include <cstring>
#include <vector>

#include "core/control/control_bpf_maps.h"
#include "core/control/control_error.h"
#include "core/control/control_programs.h"
#include "core/control/map_text.h"
#include "core/control/socket_index.h"
#include "core/domain/domain_maps.h"
#include "core/maps/bpf_syscall.h"
#include "core/maps/loaded_policy.h"
#include "core/maps/sk_storage.h"
#include "core/maps/sock_map_base.h"
#include "core/psock/psock.h"
#include "core/sock/registry.h"
#include "policy/policy.h"
#include "policy/vocabulary.h"

namespace sockshim::control {
namespace {

using nlohmann::json;
using policy::MapType;

std::shared_ptr<const LoadedPolicy> need_policy() {
  auto lp = current_policy();
  if (!lp) throw ControlError("ENOENT", "the process runs without a policy: it has no maps");
  return lp;
}

const policy::MapSpec& need_map(const LoadedPolicy& lp, const std::string& name) {
  int i = lp.policy->map_index(name);
  if (i < 0) {
    std::string names;
    for (const auto& m : lp.policy->maps) names += (names.empty() ? "\"" : ", \"") + m.name + "\"";
    throw ControlError("EBADF", "no map named \"" + name + "\" (maps: " + names + ")");
  }
  return lp.policy->maps[static_cast<size_t>(i)];
}

// The kernel's errno for a map operation, with what it means there.
[[noreturn]] void throw_errno(int err, const std::string& op, const policy::MapSpec& spec) {
  bool hash = spec.type == MapType::sockhash;
  switch (err) {
    case EEXIST:
      throw ControlError("EEXIST", "key already present (BPF_NOEXIST)");
    case ENOENT:
      throw ControlError("ENOENT", op == "update" ? "no such key (BPF_EXIST)" : "no such key");
    case E2BIG:
      throw ControlError(
          "E2BIG", hash ? "the map is full (max_entries)" : "index out of range (max_entries)");
    case EINVAL:
      throw ControlError("EINVAL", op == "delete" && !hash
                                       ? "empty slot or index out of range"
                                       : "invalid argument (flags, value or fd)");
    case EBADF:
      throw ControlError("EBADF", "not an open file descriptor in the process");
    case ENOTSOCK:
      throw ControlError("ENOTSOCK", "the fd is not a socket");
    case EOPNOTSUPP:
      throw ControlError("EOPNOTSUPP", "this socket's type or state cannot enter a sockmap");
    case EBUSY:
      throw ControlError("EBUSY", "the socket already has a conflicting program");
    case ENOSPC:
      throw ControlError("ENOSPC", "value_size is 4: lookup cannot return the cookie");
    case ENOTSUPP_KERNEL:
      throw ControlError("ENOTSUPP", "not supported by this map type");
    default:
      throw ControlError(strerrorname_np(err) ? strerrorname_np(err) : "EIO", strerror(err));
  }
}

}  // namespace

json dump_maps() {
  auto lp = current_policy();
  json out = json::array();
  SocketIndex sockets;
  for (size_t i = 0; lp && i < lp->policy->maps.size(); ++i) {
    const policy::MapSpec& spec = lp->policy->maps[i];
    json m = {{"name", spec.name},
              {"type", policy::map_type_name(spec.type)},
              {"max_entries", spec.max_entries},
              {"value_size", spec.value_size}};
    json entries = json::array();
    if (auto* sm = dynamic_cast<SockMapBase*>(lp->map_by_index[i])) {
      m["programs"] = program_names(sm->progs());
      m["count"] = sm->count();
      auto add = [&](const unsigned char* key, json decoded) {
        if (PsockRef p = sm->lookup_psock(key)) {
          json e = sockets.describe(p->sk_cookie());
          e["key"] = std::move(decoded);
          entries.push_back(std::move(e));
        }
      };
      if (spec.type == MapType::sockmap) {
        for (uint32_t k = 0; k < spec.max_entries && entries.size() < sm->count(); ++k)
          add(reinterpret_cast<const unsigned char*>(&k), k);
      } else {
        std::vector<unsigned char> key(spec.key_size), next(spec.key_size);
        const void* prev = nullptr;
        while (sm->get_next_key_sys(prev, next.data()) == 0) {
          key = next;
          add(key.data(), decode_key(spec, key.data()));
          prev = key.data();
        }
      }
    } else if (auto* st = dynamic_cast<SkStorage*>(lp->map_by_index[i])) {
      m["count"] = st->count();
    }
    m["entries"] = std::move(entries);
    out.push_back(std::move(m));
  }
  for (json& m : dump_bpf_maps(sockets)) out.push_back(std::move(m));
  return out;
}

json dump_domain_maps() {
  std::vector<domain::SharedMap> maps;
  std::string key, error;
  if (!domain::domain_maps_read(&maps, &key, &error))
    throw ControlError("EUCLEAN", "the domain's maps cannot be read: " + error);
  if (key.empty()) return nullptr;
  auto lp = current_policy();
  json out = json::array();
  for (const domain::SharedMap& m : maps) {
    auto type = static_cast<MapType>(m.type);
    // The key decoded by this process's definition of the map, if it has the same.
    const policy::MapSpec* spec = nullptr;
    int i = lp ? lp->policy->map_index(m.name) : -1;
    if (i >= 0) {
      const policy::MapSpec& s = lp->policy->maps[static_cast<size_t>(i)];
      if (s.type == type && s.key_size == m.key_size && s.max_entries == m.max_entries) spec = &s;
    }
    json entries = json::array();
    for (const domain::SharedEntry& e : m.entries) {
      json k;
      if (type == MapType::sockmap && e.key.size() == sizeof(uint32_t)) {
        uint32_t idx;
        std::memcpy(&idx, e.key.data(), sizeof idx);
        k = idx;
      } else if (spec) {
        k = decode_key(*spec, e.key.data());
      } else {
        static const char kHex[] = "0123456789abcdef";
        std::string hex;
        for (unsigned char c : e.key) hex += {kHex[c >> 4], kHex[c & 15]};
        k = hex;
      }
      json holders = json::array();
      for (const domain::Holder& h : e.holders) holders.push_back({{"pid", h.pid}, {"fd", h.fd}});
      entries.push_back({{"key", std::move(k)}, {"cookie", e.cookie}, {"holders", holders}});
    }
    bool known = m.type <= static_cast<uint32_t>(MapType::hash);  // from shared memory
    out.push_back({{"name", m.name},
                   {"type", known ? policy::map_type_name(type) : "unknown"},
                   {"key_size", m.key_size},
                   {"max_entries", m.max_entries},
                   {"count", m.entries.size()},
                   {"entries", std::move(entries)}});
  }
  return {{"key", key}, {"maps", std::move(out)}};
}

json dump_storage() {
  auto lp = current_policy();
  json out = json::array();
  if (!lp) return out;
  SocketIndex sockets;
  for (size_t i = 0; i < lp->policy->maps.size(); ++i) {
    auto* st = dynamic_cast<SkStorage*>(lp->map_by_index[i]);
    if (!st) continue;
    const policy::MapSpec& spec = lp->policy->maps[i];
    json values = json::array();
    std::vector<unsigned char> value(spec.value_size);
    for (const auto& [cookie, entry] : sockets.by_cookie) {
      SocketRef ref = registry::get(entry.fds.front());
      if (ref.get() != entry.sk || st->lookup(ref.get(), value.data()) != 0) continue;
      json v = sockets.describe(cookie);
      v["value"] = decode_value(spec, value.data());
      values.push_back(std::move(v));
    }
    out.push_back({{"map", spec.name}, {"values", std::move(values)}});
  }
  return out;
}

json map_op(const json& args) {
  auto lp = need_policy();
  std::string op = args.value("op", "");
  if (op != "lookup" && op != "update" && op != "delete")
    throw ControlError("EINVAL", "/args/op: expected one of \"lookup\", \"update\", \"delete\"");
  if (!args.contains("map") || !args["map"].is_string())
    throw ControlError("EINVAL", "/args/map: expected a map name");
  if (!args.contains("key") || !args["key"].is_string())
    throw ControlError("EINVAL", "/args/key: expected the key as text");
  const policy::MapSpec& spec = need_map(*lp, args["map"]);
  std::string key_text = args["key"];

  std::vector<unsigned char> key;
  try {
    if (spec.type == MapType::sockhash) {
      key = encode_key(spec, key_text);
    } else {
      size_t used = 0;
      long long n = std::stoll(key_text, &used, 0);
      if (used != key_text.size() || n < 0 || n > UINT32_MAX) throw std::invalid_argument(key_text);
      uint32_t u = static_cast<uint32_t>(n);  // a sockmap index, or an sk_storage socket fd
      key.resize(4);
      memcpy(key.data(), &u, 4);
    }
  } catch (const std::logic_error&) {
    throw ControlError("EINVAL",
                       "key \"" + key_text + "\": expected " +
                           (spec.type == MapType::sockmap ? "an index" : "the socket's fd number"));
  }

  const std::string flag_text = args.value("flags", "BPF_ANY");
  const policy::NamedValue* flag = policy::find_name(policy::kUpdateFlags, flag_text);
  if (!flag)
    throw ControlError("EINVAL", "/args/flags: expected one of " +
                                     policy::quoted_list(policy::names_of(policy::kUpdateFlags)));
  const uint64_t flags = flag->value;

  const char* name = spec.name.c_str();
  json result = {{"map", spec.name}, {"op", op}};
  if (op == "lookup") {
    std::vector<unsigned char> value(spec.type == MapType::sk_storage ? spec.value_size : 8);
    if (int r = map_lookup_elem(name, key.data(), value.data()); r != 0) throw_errno(-r, op, spec);
    if (spec.type == MapType::sk_storage) {
      result["value"] = decode_value(spec, value.data());
    } else {
      uint64_t cookie;
      memcpy(&cookie, value.data(), sizeof cookie);
      result["cookie"] = cookie;
      result["socket"] = SocketIndex().describe(cookie);
    }
  } else if (op == "delete") {
    if (int r = map_delete_elem(name, key.data()); r != 0) throw_errno(-r, op, spec);
  } else if (spec.type == MapType::sk_storage) {
    if (!args.contains("value") || !args["value"].is_string())
      throw ControlError("EINVAL", "/args/value: an sk_storage update needs field=number values");
    std::vector<unsigned char> value = encode_value(spec, args["value"]);
    if (int r = map_update_elem(name, key.data(), value.data(), flags); r != 0)
      throw_errno(-r, op, spec);
  } else {
    if (!args.contains("fd") || !args["fd"].is_number_integer())
      throw ControlError("EINVAL", "/args/fd: an update needs the socket's fd in the process");
    int64_t fd = args["fd"];
    uint64_t value8 = static_cast<uint64_t>(fd);
    uint32_t value4 = static_cast<uint32_t>(fd);
    const void* value = spec.value_size == 4 ? static_cast<const void*>(&value4) : &value8;
    if (int r = map_update_elem(name, key.data(), value, flags); r != 0) throw_errno(-r, op, spec);
  }
  return result;
}

}  // namespace sockshim::control
