// What kind of executable a command is: a preload only reaches dynamically
// linked programs that call libc.
#pragma once

#include <string>

namespace sockshim::tools {

enum class ExecutableKind { dynamic, static_binary, go_binary, script, unknown };

ExecutableKind probe_executable(const std::string& path);

// Finds a command the way execvp does; empty when it is not found.
std::string find_in_path(const std::string& command);

}  // namespace sockshim::tools
