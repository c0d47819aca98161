// The control protocol as both ends need it: the shim's control server and the
// `sockshim` command line (tools/), which includes this header and nothing
// else of core/. A request is one JSON line {"version", "command", "args"};
// the answer one JSON line (docs: the control protocol). Sockets live at
// <runtime dir>/<pid>.sock, the runtime dir being SOCKSHIM_RUNTIME_DIR, else
// $XDG_RUNTIME_DIR/sockshim, else /tmp/sockshim-$UID.
#pragma once

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

namespace sockshim::control {

inline constexpr int kProtocolVersion = 1;
inline constexpr size_t kMaxRequestBytes = 64 * 1024;
inline constexpr char kSocketSuffix[] = ".sock";

inline std::string runtime_dir() {
  if (const char* dir = getenv("SOCKSHIM_RUNTIME_DIR"); dir && *dir) return dir;
  if (const char* xdg = getenv("XDG_RUNTIME_DIR"); xdg && *xdg)
    return std::string(xdg) + "/sockshim";
  return "/tmp/sockshim-" + std::to_string(geteuid());
}

// Creates the directory (mode 0700) if needed. Returns an empty string when it
// is usable, else why not: a directory that another user owns or that others
// may enter is refused, since control sockets in it would be reachable.
inline std::string prepare_runtime_dir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return "cannot create " + dir + ": " + strerror(errno);
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return "cannot stat " + dir + ": " + strerror(errno);
  if (!S_ISDIR(st.st_mode)) return dir + " is not a directory";
  if (st.st_uid != geteuid())
    return dir + " belongs to uid " + std::to_string(st.st_uid) + ", not to uid " +
           std::to_string(geteuid());
  if (st.st_mode & 077) return dir + " is open to other users (mode must be 0700)";
  return {};
}

inline std::string control_socket_path(const std::string& dir, int pid) {
  return dir + "/" + std::to_string(pid) + kSocketSuffix;
}

}  // namespace sockshim::control
