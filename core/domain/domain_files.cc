#include "core/domain/domain_files.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/domain/arena.h"
#include "core/domain/members.h"
#include "core/sock/real.h"

namespace sockshim::domain {
namespace {

std::string errno_text(const std::string& what, const std::string& path) {
  return "cannot " + what + " " + path + ": " + strerror(errno);
}

// "" when st is the user's own and closed to others.
std::string private_to_user(const struct stat& st, const std::string& path, const char* mode) {
  if (st.st_uid != geteuid())
    return path + " belongs to uid " + std::to_string(st.st_uid) + ", not to uid " +
           std::to_string(geteuid());
  if (st.st_mode & 077) {
    char octal[8];
    snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return path + " has mode " + octal + ", open to other users (must be " + mode + ")";
  }
  return {};
}

// Writes a fresh arena into a new file and links it in as dir/arena; losing
// the race to another process creating it is success.
std::string create_arena(const std::string& dir, const std::string& key) {
  std::string tmp = dir + "/." + kArenaFileName + "." + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return errno_text("create", tmp);
  std::string why;
  void* base = MAP_FAILED;
  if (fchmod(fd, 0600) != 0 || ftruncate(fd, kArenaFileSize) != 0)
    why = errno_text("size", tmp);
  else if ((base = mmap(nullptr, kArenaFileSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) ==
           MAP_FAILED)
    why = errno_text("map", tmp);
  real::close(fd);
  if (why.empty()) {
    Arena arena(base, kArenaFileSize);
    int r = Arena::format(base, kArenaFileSize, key);
    if (r == 0) r = members_create(arena);
    if (r < 0) why = "cannot format " + tmp + ": " + strerror(-r);
  }
  if (base != MAP_FAILED) munmap(base, kArenaFileSize);
  std::string path = dir + "/" + kArenaFileName;
  if (why.empty() && link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST)
    why = errno_text("link", path);
  unlink(tmp.c_str());
  return why;
}

}  // namespace

std::string make_private_dir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0700) == 0) {
    if (chmod(dir.c_str(), 0700) != 0) return errno_text("chmod", dir);  // whatever the umask
  } else if (errno != EEXIST) {
    return errno_text("create", dir);
  }
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return errno_text("stat", dir);
  if (!S_ISDIR(st.st_mode)) return dir + " is not a directory";
  return private_to_user(st, dir, "0700");
}

std::string map_arena(const std::string& dir, const std::string& key, MappedFile* out) {
  std::string path = dir + "/" + kArenaFileName;
  int fd = -1;
  for (int attempt = 0; attempt < 2 && fd < 0; ++attempt) {
    fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) break;
    if (errno != ENOENT || attempt == 1) return errno_text("open", path);
    if (std::string why = create_arena(dir, key); !why.empty()) return why;
  }
  struct stat st;
  std::string why;
  if (fstat(fd, &st) != 0)
    why = errno_text("stat", path);
  else if (!S_ISREG(st.st_mode))
    why = path + " is not a regular file";
  else if (why = private_to_user(st, path, "0600"); why.empty()) {
    if (static_cast<uint64_t>(st.st_size) < kMinArenaSize) {
      why = path + ": the file has " + std::to_string(st.st_size) +
            " bytes, fewer than an arena's header (truncated)";
    } else {
      void* base = mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (base == MAP_FAILED)
        why = errno_text("map", path);
      else
        *out = {base, static_cast<uint64_t>(st.st_size), st.st_dev, st.st_ino};
    }
  }
  real::close(fd);
  return why;
}

std::string still_mapped(const std::string& path, const MappedFile& file) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return errno_text("stat", path);
  if (st.st_dev != file.dev || st.st_ino != file.ino)
    return "the file was replaced by another since this process mapped it";
  if (static_cast<uint64_t>(st.st_size) != file.size)
    return "the file has " + std::to_string(st.st_size) + " bytes, not the " +
           std::to_string(file.size) + " mapped (truncated or grown)";
  return {};
}

}  // namespace sockshim::domain
