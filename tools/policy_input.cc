#include "tools/policy_input.h"

#include <iostream>
#include <iterator>

namespace sockshim::tools {

policy::LoadResult load_policy_arg(const std::string& arg) {
  if (arg != "-") return policy::load_policy_file(arg);
  std::string text((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
  return policy::load_policy_text(text);
}

std::string policy_display_name(const std::string& arg) {
  return arg == "-" ? "<stdin>" : arg;
}

}  // namespace sockshim::tools
