// Maps for the map unit tests (socket pairs come from test/support). The test binaries hold the
// shim's hook objects, so socket(), dup() and close() here go through the registry as in a
// preloaded program.
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/maps/bpf_syscall.h"
#include "core/maps/map_table.h"
#include "core/maps/sk_storage.h"
#include "core/maps/sock_map_base.h"
#include "policy/spec.h"
#include "test/support/loopback.h"

namespace maps_test {

using sockshim::BpfMap;
using sockshim::MapTable;
using sockshim::policy::MapSpec;
using sockshim::policy::MapType;
using test_support::LoopbackPair;
using test_support::UnixPair;

inline MapSpec sockmap_spec(std::string name, uint32_t max, uint32_t value_size = 8) {
  MapSpec s;
  s.name = std::move(name);
  s.type = MapType::sockmap;
  s.max_entries = max;
  s.value_size = value_size;
  s.key_size = 4;
  return s;
}

inline MapSpec sockhash_spec(std::string name, uint32_t max, uint32_t key_size = 4) {
  MapSpec s = sockmap_spec(std::move(name), max);
  s.type = MapType::sockhash;
  s.key_size = key_size;
  return s;
}

inline MapSpec sk_storage_spec(std::string name, uint32_t value_size = 8) {
  MapSpec s;
  s.name = std::move(name);
  s.type = MapType::sk_storage;
  s.max_entries = 0;
  s.key_size = 4;
  s.value_size = value_size;
  s.flags = sockshim::policy::BPF_F_NO_PREALLOC;
  return s;
}

inline std::unique_ptr<MapTable> make_table(const std::vector<MapSpec>& specs,
                                            const std::vector<sockshim::MapAttachment>& a = {}) {
  std::unique_ptr<MapTable> t;
  std::string err;
  if (MapTable::create(specs, a, &t, &err) != 0) return nullptr;
  return t;
}

// Distinct program identities: core only stores and compares them.
inline const sockshim::policy::Program* prog(int n) {
  static char ids[16];
  return reinterpret_cast<const sockshim::policy::Program*>(&ids[n]);
}

inline int update(BpfMap& m, uint32_t key, uint64_t fd, uint64_t flags = sockshim::BPF_ANY) {
  return sockshim::map_update_elem(m, &key, &fd, flags);
}
inline int update32(BpfMap& m, uint32_t key, uint32_t fd, uint64_t flags = sockshim::BPF_ANY) {
  return sockshim::map_update_elem(m, &key, &fd, flags);
}
inline int lookup(BpfMap& m, uint32_t key, uint64_t* cookie) {
  return sockshim::map_lookup_elem(m, &key, cookie);
}
inline uint64_t lookup_cookie(BpfMap& m, uint32_t key) {
  uint64_t c = 0;
  return lookup(m, key, &c) == 0 ? c : 0;
}
inline int del(BpfMap& m, uint32_t key) {
  return sockshim::map_delete_elem(m, &key);
}

}  // namespace maps_test
