// A domain's files: its directory (0700) and its arena (0600), both the
// user's own. Anything else in their place (another user's, open to the group
// or others, a symlink, not a directory or regular file) is refused with a
// sentence saying so: another user's process never joins, reads or writes a
// domain.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace sockshim::domain {

inline constexpr uint64_t kArenaFileSize = 4 << 20;  // sparse: pages cost when touched
inline constexpr char kArenaFileName[] = "arena";

// Creates dir (0700) if missing; "" when it is usable, else why not.
std::string make_private_dir(const std::string& dir);

// A mapped arena file.
struct MappedFile {
  void* base = nullptr;
  uint64_t size = 0;
  dev_t dev = 0;
  ino_t ino = 0;
};

// Opens dir/arena, creating and formatting it for key (atomically: a new file
// appears only whole) when there is none, and maps it whole. "" or why not.
std::string map_arena(const std::string& dir, const std::string& key, MappedFile* out);

// Whether the file at path is still the one mapped, with its size: a file
// replaced or truncated since would leave this process alone or fault it.
// "" or why not (a sentence about "the file": the caller names it).
std::string still_mapped(const std::string& path, const MappedFile& file);

}  // namespace sockshim::domain
