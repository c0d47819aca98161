// The process's side of its domain's shared maps (shared_maps.h): what the
// maps layer records as sockets enter and leave its maps, and what dump
// reads. Without a domain every call does nothing; a domain that fails
// closed stops recording (its error is logged once, by the domain).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/domain/shared_maps.h"

namespace sockshim::domain {

// A change's effect on its map's generation (shared_map_gen_word): before
// and after it, read under the domain's lock. Both 0 without a domain.
struct MapGenStep {
  uint32_t before = 0, after = 0;
};

// cookie entered def at key in this process, through fd (-1: unknown).
MapGenStep domain_map_update(const MapDef& def, const void* key, uint64_t cookie, int fd) noexcept;
// cookie left def at key (a delete): the domain's entry goes if it still
// holds cookie (another process may have put another socket there since).
MapGenStep domain_map_delete(const MapDef& def, const void* key, uint64_t cookie) noexcept;

// What the domain has at key in def, for a process checking its own entry.
struct DomainEntry {
  uint64_t cookie = 0;                 // 0: no socket at key
  uint32_t gen = 0;                    // the map's generation when read
  const uint32_t* gen_word = nullptr;  // nullptr: def has no descriptor yet
};
// false when the process has no domain or it failed closed.
bool domain_map_lookup(const MapDef& def, const void* key, DomainEntry* out) noexcept;

// This process's entries, each with its fd: what an exec'd image puts back
// in its own maps. Empty without a domain.
std::vector<HeldEntry> domain_held_entries() noexcept;
// This process's last fd of cookie closed: it no longer holds it.
void domain_sock_closed(uint64_t cookie) noexcept;

// The domain's maps for dump, dead members reaped first. false with *error
// set when the process has a domain it cannot read; true with *key empty
// when it has none.
bool domain_maps_read(std::vector<SharedMap>* out, std::string* key, std::string* error);

}  // namespace sockshim::domain
