// Reading the POLICY argument of check and test-run: a path, or - for stdin.
#pragma once

#include <string>

#include "policy/policy.h"

namespace sockshim::tools {

policy::LoadResult load_policy_arg(const std::string& arg);
// How errors name the source: the path, or "<stdin>".
std::string policy_display_name(const std::string& arg);

}  // namespace sockshim::tools
