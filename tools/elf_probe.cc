#include "tools/elf_probe.h"

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <vector>

namespace sockshim::tools {

std::string find_in_path(const std::string& command) {
  if (command.find('/') != std::string::npos) return command;
  const char* path = getenv("PATH");
  std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + command;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return {};
}

namespace {

class File {
 public:
  explicit File(const std::string& path) : fd_(open(path.c_str(), O_RDONLY | O_CLOEXEC)) {}
  ~File() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  // Reads exactly n bytes at off.
  bool read_at(uint64_t off, void* out, size_t n) const {
    return pread(fd_, out, n, static_cast<off_t>(off)) == static_cast<ssize_t>(n);
  }

 private:
  int fd_;
};

bool is_go_section(const char* name) {
  return strcmp(name, ".go.buildinfo") == 0 || strcmp(name, ".note.go.buildid") == 0;
}

}  // namespace

ExecutableKind probe_executable(const std::string& path) {
  File f(path);
  Elf64_Ehdr eh;
  if (!f.ok() || !f.read_at(0, &eh, sizeof eh)) return ExecutableKind::unknown;
  if (eh.e_ident[0] == '#' && eh.e_ident[1] == '!') return ExecutableKind::script;
  if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64)
    return ExecutableKind::unknown;

  bool has_interp = false;
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    if (!f.read_at(eh.e_phoff + i * sizeof ph, &ph, sizeof ph)) return ExecutableKind::unknown;
    has_interp |= ph.p_type == PT_INTERP;
  }

  // Go binaries make raw system calls even when dynamically linked.
  Elf64_Shdr names;
  if (eh.e_shstrndx < eh.e_shnum &&
      f.read_at(eh.e_shoff + eh.e_shstrndx * sizeof names, &names, sizeof names)) {
    for (int i = 0; i < eh.e_shnum; ++i) {
      Elf64_Shdr sh;
      char name[32] = {};
      if (f.read_at(eh.e_shoff + i * sizeof sh, &sh, sizeof sh) &&
          f.read_at(names.sh_offset + sh.sh_name, name, sizeof name - 1) && is_go_section(name))
        return ExecutableKind::go_binary;
    }
  }
  return has_interp ? ExecutableKind::dynamic : ExecutableKind::static_binary;
}

}  // namespace sockshim::tools
