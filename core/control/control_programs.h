// The programs part of a dump: the current policy's verdict programs with
// their counters per rule, and the programs attached to a map or a psock.
#pragma once

#include <nlohmann/json.hpp>

#include "core/maps/sock_map_base.h"

namespace sockshim::control {

// The current policy's verdict programs with their counters per rule, then
// the bytecode programs attached to its maps or bpf()'s, with their faults.
nlohmann::json dump_programs();

// The names of the programs attached, by attach role.
nlohmann::json program_names(const MapProgs& p);

}  // namespace sockshim::control
