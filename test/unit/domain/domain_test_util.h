// What the domain tests share: a private temporary directory, an arena in
// anonymous shared memory, and reading a file's mode.
#pragma once

#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "core/domain/arena.h"
#include "core/domain/members.h"

namespace domain_test {

// A fresh directory under /tmp, removed with everything in it at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/sockshim-domain-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// An arena with its member table over size bytes of anonymous shared memory
// (shared with fork children, as a mapped file is).
struct SharedArena {
  uint64_t size;
  void* base;
  sockshim::domain::Arena arena;
  explicit SharedArena(uint64_t bytes = 1 << 20)
      : size(bytes),
        base(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)),
        arena(base, bytes) {
    sockshim::domain::Arena::format(base, size, "name:test");
    sockshim::domain::members_create(arena);
  }
  ~SharedArena() { munmap(base, size); }
  sockshim::domain::ArenaHeader* header() { return arena.header(); }
};

inline unsigned mode_of(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0xffff;
}

}  // namespace domain_test
