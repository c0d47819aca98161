#include "core/control/control_maps.h"

#include <arpa/inet.h>
#include <sched.h>

#include <cstring>
#include <map>
#include <sstream>
#include <vector>

#include "core/bpfsys/bpf_objects.h"
#include "core/control/control_error.h"
#include "core/control/rule_text.h"
#include "core/maps/bpf_syscall.h"
#include "core/maps/hash_map.h"
#include "core/maps/loaded_policy.h"
#include "core/maps/sk_storage.h"
#include "core/maps/sock_map_base.h"
#include "core/psock/psock.h"
#include "core/psock/psock_stats.h"
#include "core/psock/sk_msg_queue.h"
#include "core/rx/sk_psock_rx.h"
#include "core/sock/registry.h"
#include "core/sock/sock_query.h"
#include "policy/compiled.h"
#include "policy/policy.h"
#include "policy/program.h"

namespace sockshim::control {
namespace {

using nlohmann::json;
using policy::KeyField;
using policy::MapType;

// The process's sockets by cookie, with their fds (a dump names sockets by both).
struct SocketIndex {
  struct Entry {
    std::vector<int> fds;
    Socket* sk = nullptr;
  };
  std::map<uint64_t, Entry> by_cookie;

  SocketIndex() {
    for (int fd = 0, top = registry::high_water(); fd <= top; ++fd) {
      Socket* s = registry::peek(fd);
      if (!s || registry::is_internal(s)) continue;
      Entry& e = by_cookie[s->cookie];
      e.sk = s;
      e.fds.push_back(fd);
    }
  }

  // {"cookie", "fds", "local", "remote"} of the socket with that cookie.
  json describe(uint64_t cookie) const;
};

std::string ip4_text(const unsigned char* p) {
  char buf[INET_ADDRSTRLEN];
  return inet_ntop(AF_INET, p, buf, sizeof buf);
}

std::string ip6_text(const unsigned char* p) {
  char buf[INET6_ADDRSTRLEN];
  return inet_ntop(AF_INET6, p, buf, sizeof buf);
}

std::string address_text(const SockAddr& a) {
  if (a.addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a.addr);
    return ip4_text(reinterpret_cast<const unsigned char*>(&in->sin_addr)) + ":" +
           std::to_string(ntohs(in->sin_port));
  }
  if (a.addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.addr);
    return "[" + ip6_text(reinterpret_cast<const unsigned char*>(&in6->sin6_addr)) +
           "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "";
}

json SocketIndex::describe(uint64_t cookie) const {
  json out = {{"cookie", cookie}};
  auto it = by_cookie.find(cookie);
  if (it == by_cookie.end()) {
    out["fds"] = json::array();
    return out;
  }
  SocketRef ref = registry::get(it->second.fds.front());
  out["fds"] = it->second.fds;
  if (ref.get() == it->second.sk) {
    TcpState state = sock_state_for_dump(it->second.fds.front(), *ref.get());
    std::lock_guard g(ref->lock());
    out["local"] = address_text(ref->local);
    out["remote"] = address_text(ref->remote);
    out["state"] = tcp_state_name(state);
  }
  return out;
}

const char* key_field_name(KeyField f) {
  switch (f) {
    case KeyField::family:
      return "family";
    case KeyField::local_ip4:
      return "local_ip4";
    case KeyField::remote_ip4:
      return "remote_ip4";
    case KeyField::local_ip6:
      return "local_ip6";
    case KeyField::remote_ip6:
      return "remote_ip6";
    case KeyField::local_port:
      return "local_port";
    case KeyField::remote_port:
      return "remote_port";
    case KeyField::u32:
      return "u32";
    case KeyField::u64:
      return "u64";
  }
  return "?";
}

// A sockhash key, field by field, in the map's layout (POLICY.md's C API).
json decode_key(const policy::MapSpec& spec, const unsigned char* key) {
  json out = json::object();
  size_t off = 0;
  for (KeyField f : spec.key) {
    const unsigned char* p = key + off;
    uint32_t u32;
    memcpy(&u32, p, sizeof u32);
    switch (f) {
      case KeyField::local_ip4:
      case KeyField::remote_ip4:
        out[key_field_name(f)] = ip4_text(p);
        break;
      case KeyField::local_ip6:
      case KeyField::remote_ip6:
        out[key_field_name(f)] = ip6_text(p);
        break;
      case KeyField::u64: {
        uint64_t u64;
        memcpy(&u64, p, sizeof u64);
        out[key_field_name(f)] = u64;
        break;
      }
      default:
        out[key_field_name(f)] = u32;
    }
    off += policy::key_field_size(f);
  }
  return out;
}

// "field=value,field=value" in any order, every field of the layout once.
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
    std::string name = key_field_name(f);
    auto it = given.find(name);
    if (it == given.end()) throw ControlError("EINVAL", "key: missing field \"" + name + "\"");
    const std::string& v = it->second;
    unsigned char* p = key.data() + off;
    bool ok = true;
    try {
      switch (f) {
        case KeyField::local_ip4:
        case KeyField::remote_ip4:
          ok = inet_pton(AF_INET, v.c_str(), p) == 1;
          break;
        case KeyField::local_ip6:
        case KeyField::remote_ip6:
          ok = inet_pton(AF_INET6, v.c_str(), p) == 1;
          break;
        case KeyField::u64: {
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
    off += policy::key_field_size(f);
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

json program_names(const MapProgs& p) {
  json out = json::object();
  if (p.msg_parser) out["sk_msg"] = p.msg_parser->name();
  if (p.stream_parser) out["stream_parser"] = p.stream_parser->name();
  if (p.stream_verdict) out["stream_verdict"] = p.stream_verdict->name();
  if (p.skb_verdict) out["skb_verdict"] = p.skb_verdict->name();
  return out;
}

const char* bpf_map_type_name(MapType t) {
  switch (t) {
    case MapType::sockmap:
      return "sockmap";
    case MapType::sockhash:
      return "sockhash";
    case MapType::sk_storage:
      return "sk_storage";
    case MapType::array:
      return "array";
    case MapType::hash:
      return "hash";
  }
  return "?";
}

// A map bpf() created (core/bpfsys/), listed after the policy's with
// "source": "bpf" and its id; sockhash keys are the key's bytes in hex.
json bpf_map(const bpfsys::MapObject& obj, const SocketIndex& sockets) {
  BpfMap& map = *obj.map;
  json m = {{"name", obj.name},
            {"type", bpf_map_type_name(map.type())},
            {"source", "bpf"},
            {"id", obj.id},
            {"max_entries", map.max_entries()},
            {"value_size", map.value_size()}};
  json entries = json::array();
  if (auto* sm = dynamic_cast<SockMapBase*>(&map)) {
    m["programs"] = program_names(sm->progs());
    m["count"] = sm->count();
    std::vector<unsigned char> key(map.key_size()), next(map.key_size());
    const void* prev = nullptr;
    while (entries.size() < sm->count() && sm->get_next_key_sys(prev, next.data()) == 0) {
      key = next;
      prev = key.data();
      PsockRef p = sm->lookup_psock(key.data());
      if (!p) continue;
      json e = sockets.describe(p->sk()->cookie);
      if (map.type() == MapType::sockmap) {
        uint32_t index;
        memcpy(&index, key.data(), sizeof index);
        e["key"] = index;
      } else {
        std::string hex;
        for (unsigned char b : key)
          hex += "0123456789abcdef"[b >> 4], hex += "0123456789abcdef"[b & 15];
        e["key"] = hex;
      }
      entries.push_back(std::move(e));
    }
  } else if (auto* st = dynamic_cast<SkStorage*>(&map)) {
    m["count"] = st->count();
  } else if (auto* h = dynamic_cast<HashMap*>(&map)) {
    m["count"] = h->count();
  }
  m["entries"] = std::move(entries);
  return m;
}

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

json counters(const DirSnapshot& d) {
  return {{"in", d.in},         {"pushed", d.pushed},   {"popped", d.popped},
          {"passed", d.passed}, {"dropped", d.dropped}, {"redirected", d.redirected},
          {"queued", d.held},   {"runs", d.runs}};
}

bool adds_up(const DirSnapshot& d) {
  return d.in + d.pushed - d.popped == d.passed + d.dropped + d.redirected + d.held;
}

// The receive engine changes its counters and its held bytes one after the
// other, without the send path's sequence count: read again while a change
// is half made (a few tries; a lasting mismatch is shown as it is).
DirSnapshot rx_snapshot(Psock* p, const PsockDirStats& s) {
  DirSnapshot d;
  for (int tries = 0; tries < 100; ++tries) {
    d = dir_snapshot(s);
    d.held = sk_psock_rx_held(p);
    if (adds_up(d)) break;
    sched_yield();
  }
  return d;
}

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
          json e = sockets.describe(p->sk()->cookie);
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
  for (const auto& obj : bpfsys::map_objects()) out.push_back(bpf_map(*obj, sockets));
  return out;
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

json dump_psocks() {
  SocketIndex sockets;
  json out = json::array();
  for (const auto& [cookie, entry] : sockets.by_cookie) {
    SocketRef ref = registry::get(entry.fds.front());
    if (ref.get() != entry.sk) continue;
    PsockRef p = psock_get(ref.get());
    if (!p) continue;
    MapProgs progs{p->progs.msg_parser.load(), p->progs.stream_parser.load(),
                   p->progs.stream_verdict.load(), p->progs.skb_verdict.load()};
    size_t links;
    {
      std::lock_guard g(p->link_lock);
      links = p->links.size();
    }
    const PsockStats& st = p->stats;
    json e = sockets.describe(cookie);
    e["programs"] = program_names(progs);
    e["links"] = links;
    e["ingress_bytes"] = sk_psock_msg_inq(p.get());
    DirSnapshot tx = dir_snapshot(st.tx), rx = rx_snapshot(p.get(), st.rx);
    DirSnapshot total{tx.in + rx.in,         tx.pushed + rx.pushed,   tx.popped + rx.popped,
                      tx.passed + rx.passed, tx.dropped + rx.dropped, tx.redirected + rx.redirected,
                      tx.runs + rx.runs,     tx.held + rx.held};
    uint64_t ingress_in = st.ingress_in.load(std::memory_order_relaxed);
    json stats = {{"tx", counters(tx)},
                  {"rx", counters(rx)},
                  {"total", counters(total)},
                  {"ingress_in", ingress_in},
                  // The name ingress_in had before the counters were bytes per direction.
                  {"queued", ingress_in}};
    stats["total"].erase("runs");
    e["stats"] = std::move(stats);
    out.push_back(std::move(e));
  }
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

  uint64_t flags = 0;
  std::string flag_text = args.value("flags", "BPF_ANY");
  if (flag_text == "BPF_NOEXIST")
    flags = 1;
  else if (flag_text == "BPF_EXIST")
    flags = 2;
  else if (flag_text != "BPF_ANY")
    throw ControlError("EINVAL",
                       "/args/flags: expected one of \"BPF_ANY\", \"BPF_NOEXIST\", \"BPF_EXIST\"");

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
