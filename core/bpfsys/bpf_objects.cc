#include "core/bpfsys/bpf_objects.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <unordered_map>
#include <utility>

#include "core/sock/errno_saver.h"
#include "core/sock/fork_reset.h"
#include "core/sock/real.h"
#include "core/sock/registry.h"

namespace sockshim::bpfsys {

std::atomic<uint32_t> g_fds_held{0};

namespace {

struct Table {
  std::mutex lock;
  std::unordered_map<int, std::shared_ptr<BpfObject>> by_fd;
};
Table& table() noexcept {
  static Table* t = new Table;  // leaked: hooks run during exit
  return *t;
}

std::atomic<uint32_t> g_next_id[3] = {1, 1, 1};

// Takes fd's entry out, under the table lock.
std::shared_ptr<BpfObject> take(Table& t, int fd) noexcept {
  auto it = t.by_fd.find(fd);
  if (it == t.by_fd.end()) return nullptr;
  std::shared_ptr<BpfObject> obj = std::move(it->second);
  t.by_fd.erase(it);
  g_fds_held.fetch_sub(1, std::memory_order_relaxed);
  return obj;
}

// A vfork child shares the parent's memory: the parent's fds are not its own
// to drop (as registry.h's hooks, it changes nothing).
bool may_change() noexcept {
  return may_hold() && !registry::in_vfork_child();
}

template <typename T>
int typed_at(int fd, BpfObject::Kind kind, std::shared_ptr<T>* out) noexcept {
  std::shared_ptr<BpfObject> obj;
  if (int r = object_at(fd, &obj)) return r;
  if (obj->kind != kind) return -EINVAL;
  *out = std::static_pointer_cast<T>(std::move(obj));
  return 0;
}

}  // namespace

BpfObject::BpfObject(Kind kind, const char (&n)[BPF_OBJ_NAME_LEN]) noexcept
    : kind(kind), id(g_next_id[static_cast<int>(kind)].fetch_add(1, std::memory_order_relaxed)) {
  std::memcpy(name, n, sizeof name);
}

int new_object_fd() noexcept {
  ErrnoSaver saved;
  int fd = real::epoll_create1(EPOLL_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

void close_object_fd(int fd) noexcept {
  ErrnoSaver saved;
  real::close(fd);
}

int install(int fd, std::shared_ptr<BpfObject> obj) noexcept {
  Table& t = table();
  std::shared_ptr<BpfObject> stale;
  std::lock_guard g(t.lock);
  try {
    auto [it, added] = t.by_fd.try_emplace(fd);
    if (added) g_fds_held.fetch_add(1, std::memory_order_relaxed);
    stale = std::exchange(it->second, std::move(obj));
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  return 0;
}

int object_at(int fd, std::shared_ptr<BpfObject>* out) noexcept {
  if (may_hold()) {
    Table& t = table();
    std::lock_guard g(t.lock);
    auto it = t.by_fd.find(fd);
    if (it != t.by_fd.end()) {
      *out = it->second;
      return 0;
    }
  }
  return real::fcntl(fd, F_GETFD, 0) < 0 ? -EBADF : -EINVAL;
}

int map_at(int fd, std::shared_ptr<MapObject>* out) noexcept {
  return typed_at(fd, BpfObject::Kind::map, out);
}

int prog_at(int fd, std::shared_ptr<ProgObject>* out) noexcept {
  return typed_at(fd, BpfObject::Kind::prog, out);
}

int link_at(int fd, std::shared_ptr<LinkObject>* out) noexcept {
  return typed_at(fd, BpfObject::Kind::link, out);
}

std::shared_ptr<BpfObject> untrack(int fd) noexcept {
  if (!may_change()) return nullptr;
  Table& t = table();
  std::lock_guard g(t.lock);
  return take(t, fd);
}

void untrack_range(unsigned lo, unsigned hi) noexcept {
  if (!may_change()) return;
  std::vector<std::shared_ptr<BpfObject>> gone;
  Table& t = table();
  {
    std::lock_guard g(t.lock);
    for (auto it = t.by_fd.begin(); it != t.by_fd.end();) {
      auto fd = static_cast<unsigned>(it->first);
      if (fd < lo || fd > hi) {
        ++it;
        continue;
      }
      try {
        gone.push_back(std::move(it->second));
      } catch (const std::bad_alloc&) {
        // Released under the lock instead: still correct, only slower.
      }
      it = t.by_fd.erase(it);
      g_fds_held.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  // The objects are released here, outside the lock: a map lets go of its sockets.
}

void track_dup(int oldfd, int newfd) noexcept {
  if (oldfd == newfd || !may_change()) return;
  Table& t = table();
  std::shared_ptr<BpfObject> closed;
  std::lock_guard g(t.lock);
  closed = take(t, newfd);
  auto it = t.by_fd.find(oldfd);
  if (it == t.by_fd.end()) return;
  try {
    t.by_fd.emplace(newfd, it->second);
    g_fds_held.fetch_add(1, std::memory_order_relaxed);
  } catch (const std::bad_alloc&) {
    // newfd stays unknown: bpf() on it says EINVAL, as for a foreign fd.
  }
}

std::vector<std::shared_ptr<MapObject>> map_objects() {
  std::vector<std::shared_ptr<MapObject>> out;
  if (!may_hold()) return out;
  Table& t = table();
  {
    std::lock_guard g(t.lock);
    for (const auto& [fd, obj] : t.by_fd)
      if (obj->kind == BpfObject::Kind::map)
        out.push_back(std::static_pointer_cast<MapObject>(obj));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a->id < b->id; });
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

void after_fork_child() noexcept {
  attach_after_fork_child();
  if (!may_hold()) return;
  Table& t = table();
  fork_reset_if_held(t.lock);
  for (const auto& [fd, obj] : t.by_fd) {
    if (obj->kind == BpfObject::Kind::map)
      static_cast<MapObject&>(*obj).map->after_fork_child();
    else if (obj->kind == BpfObject::Kind::prog)
      fork_reset_if_held(static_cast<ProgObject&>(*obj).maps_lock);
  }
}

}  // namespace sockshim::bpfsys
