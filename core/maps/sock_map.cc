#include "core/maps/sock_map.h"

#include <errno.h>

#include <cstring>
#include <mutex>

#include "core/sock/socket.h"

namespace sockshim {

SockMap::SockMap(policy::MapSpec spec)
    : SockMapBase(std::move(spec)), slots_(new Slot[max_entries()]) {}

SockMap::~SockMap() {
  {
    std::lock_guard g(lock_);
    for (uint32_t i = 0; i < max_entries(); ++i)
      if (slots_[i].psock) clear_slot(slots_[i]);
  }
  wait_unlinkers();
}

void SockMap::clear_slot(Slot& slot) noexcept {
  Psock* psock = slot.psock;
  slot.psock = nullptr;
  slot.cookie.store(0, std::memory_order_release);
  count_.fetch_sub(1, std::memory_order_relaxed);
  unref(psock, &slot);
}

int SockMap::update_elem(const void* key, Socket* sk, uint64_t flags, int fd) noexcept {
  uint32_t idx = read_index(key);
  if (flags > BPF_EXIST) return -EINVAL;
  if (idx >= max_entries()) return -E2BIG;
  PsockLinks new_link;
  if (int r = init_link(&new_link)) return r;
  Psock* psock;
  if (int r = link(sk, fd, &psock)) return r;
  Slot& slot = slots_[idx];
  int ret = 0;
  {
    std::lock_guard g(lock_);
    Psock* old = slot.psock;
    if (old && flags == BPF_NOEXIST) {
      ret = -EEXIST;
    } else if (!old && flags == BPF_EXIST) {
      ret = -ENOENT;
    } else {
      add_link(psock, new_link, &slot, 0);
      slot.psock = psock;
      slot.cookie.store(sk->cookie, std::memory_order_release);
      if (old)
        unref(old, &slot);
      else
        count_.fetch_add(1, std::memory_order_relaxed);
    }
  }
  if (ret == 0) {
    shared_update(&idx, sk->cookie, fd);
    return 0;
  }
  psock_put(psock);
  return ret;
}

int SockMap::lookup_sys(const void* key, void* value) noexcept {
  if (value_size() != sizeof(uint64_t)) return -ENOSPC;
  uint32_t idx = read_index(key);
  if (idx >= max_entries()) return -ENOENT;
  uint64_t cookie = slots_[idx].cookie.load(std::memory_order_acquire);
  if (!cookie) return -ENOENT;
  std::memcpy(value, &cookie, sizeof cookie);
  return 0;
}

int SockMap::delete_sys(const void* key) noexcept {
  uint32_t idx = read_index(key);
  if (idx >= max_entries()) return -EINVAL;
  uint64_t cookie;
  {
    std::lock_guard g(lock_);
    if (!slots_[idx].psock) return -EINVAL;
    cookie = slots_[idx].cookie.load(std::memory_order_relaxed);
    clear_slot(slots_[idx]);
  }
  shared_delete(&idx, cookie);
  return 0;
}

int SockMap::get_next_key_sys(const void* key, void* next_key) noexcept {
  return index_get_next_key(key, max_entries(), next_key);
}

PsockRef SockMap::lookup_psock(const void* key) noexcept {
  uint32_t idx = read_index(key);
  if (idx >= max_entries()) return {};
  std::lock_guard g(lock_);
  Psock* p = slots_[idx].psock;
  // The slot's own reference keeps p alive under the lock.
  return p && psock_try_get(p) ? PsockRef(p) : PsockRef();
}

void SockMap::unlink(Psock* psock, const PsockLink& link) noexcept {
  // Links of this map always point into slots_.
  Slot& slot = *const_cast<Slot*>(static_cast<const Slot*>(link.link_raw));
  std::lock_guard g(lock_);
  if (slot.psock == psock) clear_slot(slot);
}

}  // namespace sockshim
