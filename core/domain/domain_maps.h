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

// cookie entered def at key in this process, through fd (-1: unknown).
void domain_map_update(const MapDef& def, const void* key, uint64_t cookie, int fd) noexcept;
// cookie left def at key (a delete): the domain's entry goes if it still
// holds cookie (another process may have put another socket there since).
void domain_map_delete(const MapDef& def, const void* key, uint64_t cookie) noexcept;
// The socket at key in the domain's map def, whichever process put it there:
// its cookie, or 0 (none, no domain, or the domain failed).
uint64_t domain_map_lookup(const MapDef& def, const void* key) noexcept;
// This process's last fd of cookie closed: it no longer holds it.
void domain_sock_closed(uint64_t cookie) noexcept;

// The domain's maps for dump, dead members reaped first. false with *error
// set when the process has a domain it cannot read; true with *key empty
// when it has none.
bool domain_maps_read(std::vector<SharedMap>* out, std::string* key, std::string* error);

}  // namespace sockshim::domain
