// A reload in one member of a domain, carried to the others: each live member
// serving a control socket is asked to run the policy the reload published
// (a "reload" request with "domain_generation"), and answers once it does.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>

namespace sockshim::control {

// Asks every other live member of the process's domain to run generation
// gen, waiting up to timeout_ms for each. One entry per member:
// {"pid", "reloaded": true} or {"pid", "reloaded": false, "error": why}.
nlohmann::json reload_members(uint64_t gen, int timeout_ms = 5000);

}  // namespace sockshim::control
