// A rule of a compiled program as one short line, for dump's per-rule counters:
// its `if` in the policy's vocabulary ("local_port=6379 and data prefix
// \"GET \"") and its `do` ("apply_bytes 64, redirect sock_map_rx[0] ingress").
#pragma once

#include <string>

#include "policy/compiled.h"
#include "policy/policy.h"

namespace sockshim {

// "always" for a rule without conditions.
std::string rule_if_text(const policy::Rule& rule, const policy::Policy& pol);

std::string rule_do_text(const policy::Rule& rule, const policy::Policy& pol);

}  // namespace sockshim
