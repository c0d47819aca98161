// The loaded policy's lookups, reading a policy file, formatting the errors
// (loading a text is loader.cc's load_policy_text).
#include "policy/policy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sockshim::policy {

const Program* Policy::program(std::string_view name) const noexcept {
  for (const auto& p : programs)
    if (p->name() == name) return p.get();
  for (const ObjectProgram& o : objects)
    if (o.name == name) return o.program.get();
  return nullptr;
}

int Policy::map_index(std::string_view name) const noexcept {
  for (size_t i = 0; i < maps.size(); ++i)
    if (maps[i].name == name) return static_cast<int>(i);
  return -1;
}

const Program* Policy::attached(uint32_t map, AttachType type) const noexcept {
  for (const Attachment& a : attach)
    if (a.map == map && a.type == type) return a.program;
  return nullptr;
}

std::string LoadError::format(std::string_view source) const {
  if (line == 0 && pointer.empty()) return message;
  std::string out(source);
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += ": ";
  if (!pointer.empty()) out += pointer + ": ";
  out += message;
  return out;
}

std::string read_policy_file(const std::string& path, std::string* text) {
  // The shim reads a policy inside a program (at start, on reload): errno is
  // the program's, and the fd is closed even if the text cannot be allocated.
  struct Guard {
    int saved_errno = errno;
    int fd = -1;
    ~Guard() {
      if (fd >= 0) close(fd);
      errno = saved_errno;
    }
  } g;
  // O_NONBLOCK: opening a fifo for reading would otherwise wait for a writer.
  g.fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (g.fd < 0 || fstat(g.fd, &st) != 0) return strerror(errno);
  if (S_ISDIR(st.st_mode)) return strerror(EISDIR);
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  if (st.st_size > static_cast<off_t>(kMaxPolicyBytes)) return "larger than 16 MiB";
  // pread, not read: inside the shim read() is a hook; this fd is no socket.
  text->resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < text->size()) {
    const ssize_t n = pread(g.fd, text->data() + got, text->size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return strerror(errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  text->resize(got);  // a file that shrank while read: what it holds now
  return "";
}

std::string read_error(std::string_view path, std::string_view why) {
  return "cannot read policy " + std::string(path) + ": " + std::string(why);
}

LoadResult load_policy_file(const std::string& path) {
  std::string text;
  if (std::string why = read_policy_file(path, &text); !why.empty()) {
    LoadResult r;
    r.errors.push_back({"", 0, 0, read_error(path, why)});
    return r;
  }
  const size_t slash = path.rfind('/');
  return load_policy_text(text, slash == std::string::npos ? "" : path.substr(0, slash + 1));
}

}  // namespace sockshim::policy
