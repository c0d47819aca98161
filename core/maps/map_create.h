// Making a map from its MapSpec: the policy's maps (map_table.h) and the
// emulated bpf(BPF_MAP_CREATE) (core/bpfsys/) build every type here.
#pragma once

#include <memory>

#include "core/maps/bpf_map.h"
#include "policy/spec.h"

namespace sockshim {

// map_create_check, then the map: 0, the check's -errno, or -ENOMEM when the
// memory cannot be had (and for a sockmap or sockhash of more than
// policy::kMaxMapEntries, which no process's fds could fill). memfd: an
// mmapable array's file (array_map.h), else -1.
int map_create(const policy::MapSpec& spec, int memfd, std::shared_ptr<BpfMap>* out) noexcept;

}  // namespace sockshim
