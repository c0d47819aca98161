#include "core/control/control_bpf_maps.h"

#include <cstring>
#include <string>
#include <vector>

#include "core/bpfsys/bpf_objects.h"
#include "core/control/control_programs.h"
#include "core/maps/hash_map.h"
#include "core/maps/sk_storage.h"
#include "core/maps/sock_map_base.h"
#include "core/psock/psock.h"
#include "policy/policy.h"

namespace sockshim::control {

using nlohmann::json;

namespace {

std::string hex(const std::vector<unsigned char>& bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += kDigits[b >> 4];
    out += kDigits[b & 15];
  }
  return out;
}

json sock_map_entries(SockMapBase& sm, const SocketIndex& sockets) {
  json entries = json::array();
  std::vector<unsigned char> key(sm.key_size()), next(sm.key_size());
  const void* prev = nullptr;
  while (entries.size() < sm.count() && sm.get_next_key_sys(prev, next.data()) == 0) {
    key = next;
    prev = key.data();
    PsockRef p = sm.lookup_psock(key.data());
    if (!p) continue;
    json e = sockets.describe(p->sk_cookie());
    if (sm.type() == policy::MapType::sockmap) {
      uint32_t index;
      memcpy(&index, key.data(), sizeof index);
      e["key"] = index;
    } else {
      e["key"] = hex(key);
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

json bpf_map(const bpfsys::MapObject& obj, const SocketIndex& sockets) {
  BpfMap& map = *obj.map;
  json m = {{"name", obj.name},
            {"type", policy::map_type_name(map.type())},
            {"source", "bpf"},
            {"id", obj.id},
            {"max_entries", map.max_entries()},
            {"value_size", map.value_size()}};
  json entries = json::array();
  if (auto* sm = dynamic_cast<SockMapBase*>(&map)) {
    m["programs"] = program_names(sm->progs());
    m["count"] = sm->count();
    entries = sock_map_entries(*sm, sockets);
  } else if (auto* st = dynamic_cast<SkStorage*>(&map)) {
    m["count"] = st->count();
  } else if (auto* h = dynamic_cast<HashMap*>(&map)) {
    m["count"] = h->count();
  }
  m["entries"] = std::move(entries);
  return m;
}

}  // namespace

json dump_bpf_maps(const SocketIndex& sockets) {
  json out = json::array();
  for (const auto& obj : bpfsys::map_objects()) out.push_back(bpf_map(*obj, sockets));
  return out;
}

}  // namespace sockshim::control
