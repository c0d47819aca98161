#include "core/maps/bpf_syscall.h"

#include <errno.h>
#include <sys/socket.h>

#include "core/maps/map_table.h"
#include "core/sock/errno_saver.h"
#include "core/sock/real.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

namespace sockshim {

namespace {

bool can_write(const BpfMap& m) noexcept {
  return !(m.spec().flags & BPF_F_RDONLY);
}
bool can_read(const BpfMap& m) noexcept {
  return !(m.spec().flags & BPF_F_WRONLY);
}

// Runs op on the installed map called name.
template <typename Op>
int on_map(const char* name, Op&& op) noexcept {
  if (!name) return -EFAULT;
  std::shared_ptr<MapTable> table = current_maps();
  BpfMap* m = table ? table->find(name) : nullptr;
  if (!m) return -EBADF;
  return op(*m);
}

}  // namespace

int map_update_elem(BpfMap& map, const void* key, const void* value, uint64_t flags) noexcept {
  if (!can_write(map)) return -EPERM;
  // No map here has a bpf_spin_lock in its value.
  if (flags & BPF_F_LOCK) return -EINVAL;
  if (!key || !value) return -EFAULT;
  return map.update_sys(key, value, flags);
}

int map_lookup_elem(BpfMap& map, const void* key, void* value) noexcept {
  if (!can_read(map)) return -EPERM;
  if (!key || !value) return -EFAULT;
  return map.lookup_sys(key, value);
}

int map_delete_elem(BpfMap& map, const void* key) noexcept {
  if (!can_write(map)) return -EPERM;
  if (!key) return -EFAULT;
  return map.delete_sys(key);
}

int map_get_next_key(BpfMap& map, const void* key, void* next_key) noexcept {
  if (!can_read(map)) return -EPERM;
  if (!next_key) return -EFAULT;
  return map.get_next_key_sys(key, next_key);
}

int map_update_elem(const char* name, const void* key, const void* value, uint64_t flags) noexcept {
  return on_map(name, [&](BpfMap& m) { return map_update_elem(m, key, value, flags); });
}

int map_lookup_elem(const char* name, const void* key, void* value) noexcept {
  return on_map(name, [&](BpfMap& m) { return map_lookup_elem(m, key, value); });
}

int map_delete_elem(const char* name, const void* key) noexcept {
  return on_map(name, [&](BpfMap& m) { return map_delete_elem(m, key); });
}

int map_get_next_key(const char* name, const void* key, void* next_key) noexcept {
  return on_map(name, [&](BpfMap& m) { return map_get_next_key(m, key, next_key); });
}

uint64_t socket_cookie(int fd) noexcept {
  ErrnoSaver saved;
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (real::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0) cookie = 0;
  return cookie;
}

}  // namespace sockshim
