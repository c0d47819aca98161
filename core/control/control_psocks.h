// The psocks part of a dump.
#pragma once

#include <nlohmann/json.hpp>

namespace sockshim::control {

// Each psock: its socket, programs, links, ingress queue depth and byte
// counters (tx, rx, total).
nlohmann::json dump_psocks();

}  // namespace sockshim::control
