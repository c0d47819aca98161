// What kind of executable a command is: a preload only reaches dynamically
// linked programs that call libc.
#pragma once

#include <string>
#include <vector>

namespace sockshim::tools {

enum class ExecutableKind { dynamic, static_binary, go_binary, script, unknown };

ExecutableKind probe_executable(const std::string& path);

// The sanitizer runtimes (libasan, libubsan, libtsan...) a shared library links,
// by the names in its DT_NEEDED: a sanitized libsockshim.so needs them loaded
// before itself, ASan before anything else.
std::vector<std::string> sanitizer_runtimes(const std::string& library);

// Finds a command the way execvp does; empty when it is not found.
std::string find_in_path(const std::string& command);

}  // namespace sockshim::tools
