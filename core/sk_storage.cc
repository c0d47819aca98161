#include "core/sk_storage.h"

#include <errno.h>

#include <cstring>
#include <mutex>
#include <vector>

#include "core/sock_state.h"
#include "core/socket.h"

namespace sockshim {

namespace {

// Every live SkStorage map, so a closing socket can find its values. A socket
// with no value (sk_storage_elems == 0) never takes this lock.
struct Maps {
  std::mutex lock;
  std::vector<SkStorage*> maps;
};
Maps& live_maps() noexcept {
  static Maps* m = new Maps;  // leaked: sockets close while the process exits
  return *m;
}

int read_fd(const void* key) noexcept {
  int fd;
  std::memcpy(&fd, key, sizeof fd);
  return fd;
}

}  // namespace

SkStorage::SkStorage(policy::MapSpec spec) : BpfMap(std::move(spec)), shards_(new Shard[kShards]) {
  Maps& m = live_maps();
  std::lock_guard g(m.lock);
  m.maps.push_back(this);
}

SkStorage::~SkStorage() {
  // Under the registry lock, so no closing socket is in the middle of erasing.
  Maps& m = live_maps();
  std::lock_guard g(m.lock);
  std::erase(m.maps, this);
  for (size_t i = 0; i < kShards; ++i) {
    std::lock_guard sg(shards_[i].lock);
    for (auto& [sk, elem] : shards_[i].elems)
      const_cast<Socket*>(sk)->sk_storage_elems.fetch_sub(1, std::memory_order_relaxed);
    shards_[i].elems.clear();
  }
}

SkStorage::Shard& SkStorage::shard(const Socket* sk) noexcept {
  auto v = reinterpret_cast<uintptr_t>(sk);
  return shards_[(v >> 6 ^ v >> 12) % kShards];
}

SkStorage::Elem* SkStorage::find(Shard& s, const Socket* sk) noexcept {
  auto it = s.elems.find(sk);
  return it != s.elems.end() && it->second.cookie == sk->cookie ? &it->second : nullptr;
}

int SkStorage::update(Socket* sk, const void* value, uint64_t flags) noexcept {
  // No sk_storage map here has a bpf_spin_lock, so BPF_F_LOCK is refused too.
  if ((flags & ~BPF_F_LOCK) > BPF_EXIST || (flags & BPF_F_LOCK)) return -EINVAL;
  Shard& s = shard(sk);
  std::lock_guard g(s.lock);
  Elem* e = find(s, sk);
  if (e && flags == BPF_NOEXIST) return -EEXIST;
  if (!e && flags == BPF_EXIST) return -ENOENT;
  if (!e) {
    std::unique_ptr<unsigned char[]> v(new (std::nothrow) unsigned char[value_size()]);
    if (!v) return -ENOMEM;
    e = &s.elems[sk];
    e->cookie = sk->cookie;
    e->value = std::move(v);
    sk->sk_storage_elems.fetch_add(1, std::memory_order_relaxed);
    count_.fetch_add(1, std::memory_order_relaxed);
  }
  std::memcpy(e->value.get(), value, value_size());
  return 0;
}

int SkStorage::lookup(const Socket* sk, void* value) noexcept {
  Shard& s = shard(sk);
  std::lock_guard g(s.lock);
  Elem* e = find(s, sk);
  if (!e) return -ENOENT;
  std::memcpy(value, e->value.get(), value_size());
  return 0;
}

int SkStorage::remove(Socket* sk) noexcept {
  return erase(sk) ? 0 : -ENOENT;
}

bool SkStorage::erase(Socket* sk) noexcept {
  Shard& s = shard(sk);
  std::lock_guard g(s.lock);
  auto it = s.elems.find(sk);
  if (it == s.elems.end()) return false;
  s.elems.erase(it);
  sk->sk_storage_elems.fetch_sub(1, std::memory_order_relaxed);
  count_.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

unsigned char* SkStorage::get(Socket* sk, bool create, const void* init) noexcept {
  Shard& s = shard(sk);
  std::lock_guard g(s.lock);
  if (Elem* e = find(s, sk)) return e->value.get();
  if (!create) return nullptr;
  std::unique_ptr<unsigned char[]> v(new (std::nothrow) unsigned char[value_size()]());
  if (!v) return nullptr;
  if (init) std::memcpy(v.get(), init, value_size());
  Elem& e = s.elems[sk];
  e.cookie = sk->cookie;
  e.value = std::move(v);
  sk->sk_storage_elems.fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  return e.value.get();
}

int SkStorage::update_sys(const void* key, const void* value, uint64_t flags) noexcept {
  SocketRef sock;
  if (int r = sockfd_lookup(read_fd(key), &sock, false)) return r;
  return update(sock.get(), value, flags);
}

int SkStorage::lookup_sys(const void* key, void* value) noexcept {
  SocketRef sock;
  if (int r = sockfd_lookup(read_fd(key), &sock, false)) return r;
  return lookup(sock.get(), value);
}

int SkStorage::delete_sys(const void* key) noexcept {
  SocketRef sock;
  if (int r = sockfd_lookup(read_fd(key), &sock, false)) return r;
  return remove(sock.get());
}

int SkStorage::get_next_key_sys(const void*, void*) noexcept {
  return -ENOTSUPP_KERNEL;
}

void sk_storage_free(Socket* sk) noexcept {
  if (sk->sk_storage_elems.load(std::memory_order_acquire) == 0) return;
  Maps& m = live_maps();
  std::lock_guard g(m.lock);
  for (SkStorage* map : m.maps) map->erase(sk);
}

}  // namespace sockshim
