#include "core/control/runtime_dir.h"

#include <errno.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace sockshim {

std::string runtime_dir() {
  if (const char* dir = getenv("SOCKSHIM_RUNTIME_DIR"); dir && *dir) return dir;
  if (const char* xdg = getenv("XDG_RUNTIME_DIR"); xdg && *xdg)
    return std::string(xdg) + "/sockshim";
  return "/tmp/sockshim-" + std::to_string(geteuid());
}

std::string prepare_runtime_dir(const std::string& dir) {
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

std::string control_socket_path(const std::string& dir, int pid) {
  return dir + "/" + std::to_string(pid) + ".sock";
}

}  // namespace sockshim
