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

// The DT_NEEDED names of a 64-bit ELF file; empty when it has none or cannot be read.
std::vector<std::string> needed_libraries(const std::string& path) {
  File f(path);
  Elf64_Ehdr eh;
  if (!f.ok() || !f.read_at(0, &eh, sizeof eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64)
    return {};
  std::vector<Elf64_Phdr> loads;
  Elf64_Phdr dynamic{};
  for (int i = 0; i < eh.e_phnum; ++i) {
    Elf64_Phdr ph;
    if (!f.read_at(eh.e_phoff + i * sizeof ph, &ph, sizeof ph)) return {};
    if (ph.p_type == PT_LOAD) loads.push_back(ph);
    if (ph.p_type == PT_DYNAMIC) dynamic = ph;
  }
  std::vector<Elf64_Dyn> entries(dynamic.p_filesz / sizeof(Elf64_Dyn));
  if (!f.read_at(dynamic.p_offset, entries.data(), entries.size() * sizeof(Elf64_Dyn))) return {};
  uint64_t strtab = 0, strsz = 0;
  std::vector<uint64_t> needed;
  for (const Elf64_Dyn& d : entries) {
    if (d.d_tag == DT_NULL) break;
    if (d.d_tag == DT_NEEDED) needed.push_back(d.d_un.d_val);
    if (d.d_tag == DT_STRTAB) strtab = d.d_un.d_ptr;
    if (d.d_tag == DT_STRSZ) strsz = d.d_un.d_val;
  }
  // DT_STRTAB is an address: the load segment holding it gives its file offset.
  std::string strings(strsz, '\0');
  for (const Elf64_Phdr& ph : loads)
    if (strtab >= ph.p_vaddr && strtab + strsz <= ph.p_vaddr + ph.p_filesz) {
      if (!f.read_at(strtab - ph.p_vaddr + ph.p_offset, strings.data(), strsz)) return {};
      std::vector<std::string> names;
      for (uint64_t off : needed)
        if (off < strsz) names.emplace_back(strings.c_str() + off);
      return names;
    }
  return {};
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

std::vector<std::string> sanitizer_runtimes(const std::string& library) {
  std::vector<std::string> runtimes;
  for (const std::string& name : needed_libraries(library))
    for (const char* prefix :
         {"libasan.", "libtsan.", "libubsan.", "liblsan.", "libhwasan.", "libclang_rt."})
      if (name.rfind(prefix, 0) == 0) runtimes.push_back(name);
  return runtimes;
}

}  // namespace sockshim::tools
