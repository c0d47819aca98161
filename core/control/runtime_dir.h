// Where control sockets live: SOCKSHIM_RUNTIME_DIR, else
// $XDG_RUNTIME_DIR/sockshim, else /tmp/sockshim-$UID. Shared by the library and
// the command line.
#pragma once

#include <string>

namespace sockshim {

std::string runtime_dir();

// Creates the directory (mode 0700) if needed. Returns an empty string when it
// is usable, else why not: a directory that another user owns or that others
// may enter is refused, since control sockets in it would be reachable.
std::string prepare_runtime_dir(const std::string& dir);

std::string control_socket_path(const std::string& dir, int pid);

}  // namespace sockshim
