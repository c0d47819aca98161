// The policy a process runs: its compiled programs and the maps built from it.
// Loaded once at start-up (and swapped by reload); readers hold a shared_ptr, so
// programs outlive every run that started under them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/map_table.h"
#include "policy/policy.h"

namespace sockshim {

class BpfMap;

struct LoadedPolicy {
  std::string path;
  std::unique_ptr<policy::Policy> policy;
  std::shared_ptr<MapTable> maps;
  std::vector<BpfMap*> map_by_index;  // policy->maps[i] -> its map, for the helpers
};

// null when no policy is loaded.
std::shared_ptr<const LoadedPolicy> current_policy() noexcept;

// Loads and validates path, builds its maps and installs both. On failure
// nothing changes and *errors holds one line per problem ("FILE:LINE:COL:
// POINTER: MESSAGE").
bool load_policy(const std::string& path, std::vector<std::string>* errors) noexcept;

}  // namespace sockshim
