#include "core/maps/sock_hash.h"

#include <errno.h>

#include <bit>
#include <cstring>
#include <mutex>
#include <new>

#include "core/maps/jhash.h"
#include "core/sock/socket.h"

namespace sockshim {

SockHash::SockHash(policy::MapSpec spec)
    : SockMapBase(std::move(spec)),
      n_buckets_(std::bit_ceil(max_entries())),
      buckets_(new Bucket[n_buckets_]) {}

SockHash::~SockHash() {
  for (uint32_t i = 0; i < n_buckets_; ++i) {
    Bucket& b = buckets_[i];
    std::lock_guard g(b);
    while (Elem* e = b.head()) remove(b, e);
  }
  wait_unlinkers();
}

uint32_t SockHash::hash(const void* key) const noexcept {
  return jhash(key, key_size(), 0);
}

SockHash::Elem* SockHash::find(Bucket& b, uint32_t h, const void* key) noexcept {
  for (Elem* e = b.head(); e; e = e->next)
    if (e->hash == h && std::memcmp(e->key(), key, key_size()) == 0) return e;
  return nullptr;
}

SockHash::Elem* SockHash::alloc_elem(const void* key, uint32_t h, Psock* psock,
                                     uint64_t cookie) noexcept {
  void* mem = ::operator new(sizeof(Elem) + key_size(), std::nothrow);
  if (!mem) return nullptr;
  Elem* e = new (mem) Elem{nullptr, psock, cookie, h};
  std::memcpy(e->key(), key, key_size());
  return e;
}

void SockHash::free_elem(Elem* e) noexcept {
  count_.fetch_sub(1, std::memory_order_relaxed);
  e->~Elem();
  ::operator delete(e);
}

void SockHash::remove(Bucket& b, Elem* e) noexcept {
  if (b.head() == e) {
    b.set_head(e->next);
  } else {
    for (Elem* p = b.head(); p; p = p->next)
      if (p->next == e) {
        p->next = e->next;
        break;
      }
  }
  unref(e->psock, e);
  free_elem(e);
}

int SockHash::update_elem(const void* key, Socket* sk, uint64_t flags, int fd) noexcept {
  if (flags > BPF_EXIST) return -EINVAL;
  PsockLinks new_link;
  if (int r = init_link(&new_link)) return r;
  Psock* psock;
  if (int r = link(sk, fd, &psock)) return r;
  uint32_t h = hash(key);
  Bucket& b = bucket(h);
  int ret = 0;
  {
    std::lock_guard g(b);
    Elem* old = find(b, h, key);
    if (old && flags == BPF_NOEXIST) {
      ret = -EEXIST;
    } else if (!old && flags == BPF_EXIST) {
      ret = -ENOENT;
    } else if (count_.fetch_add(1, std::memory_order_relaxed) + 1 > max_entries() && !old) {
      count_.fetch_sub(1, std::memory_order_relaxed);
      ret = -E2BIG;  // sock_hash_alloc_elem: full unless replacing
    } else if (Elem* e = alloc_elem(key, h, psock, sk->cookie)) {
      add_link(psock, new_link, e, h);
      e->next = b.head();  // hlist_add_head: the newest key of a bucket comes first
      b.set_head(e);
      if (old) remove(b, old);
    } else {
      count_.fetch_sub(1, std::memory_order_relaxed);
      ret = -ENOMEM;
    }
  }
  if (ret == 0) {
    shared_update(key, sk->cookie, fd);
    return 0;
  }
  psock_put(psock);
  return ret;
}

int SockHash::lookup_sys(const void* key, void* value) noexcept {
  if (value_size() != sizeof(uint64_t)) return -ENOSPC;
  uint32_t h = hash(key);
  Bucket& b = bucket(h);
  uint64_t cookie;
  {
    std::lock_guard g(b);
    Elem* e = find(b, h, key);
    if (!e) return -ENOENT;
    cookie = e->cookie;
  }
  std::memcpy(value, &cookie, sizeof cookie);
  return 0;
}

int SockHash::delete_sys(const void* key) noexcept {
  uint32_t h = hash(key);
  Bucket& b = bucket(h);
  uint64_t cookie;
  {
    std::lock_guard g(b);
    Elem* e = find(b, h, key);
    if (!e) return -ENOENT;
    cookie = e->cookie;
    remove(b, e);
  }
  shared_delete(key, cookie);
  return 0;
}

int SockHash::get_next_key_sys(const void* key, void* next_key) noexcept {
  // sock_hash_get_next_key: the element after key in its bucket, else the
  // first of the following buckets; an unknown key restarts from the start.
  uint32_t i = 0;
  if (key) {
    uint32_t h = hash(key);
    Bucket& b = bucket(h);
    std::lock_guard g(b);
    if (Elem* e = find(b, h, key)) {
      if (e->next) {
        std::memcpy(next_key, e->next->key(), key_size());
        return 0;
      }
      i = (h & (n_buckets_ - 1)) + 1;
    }
  }
  for (; i < n_buckets_; ++i) {
    Bucket& b = buckets_[i];
    std::lock_guard g(b);
    if (Elem* e = b.head()) {
      std::memcpy(next_key, e->key(), key_size());
      return 0;
    }
  }
  return -ENOENT;
}

PsockRef SockHash::lookup_psock(const void* key) noexcept {
  uint32_t h = hash(key);
  Bucket& b = bucket(h);
  std::lock_guard g(b);
  Elem* e = find(b, h, key);
  return e && psock_try_get(e->psock) ? PsockRef(e->psock) : PsockRef();
}

void SockHash::unlink(Psock* psock, const PsockLink& link) noexcept {
  // The element may be gone already: compare addresses, never read it unless
  // it is still in the bucket.
  Bucket& b = bucket(link.hash);
  std::lock_guard g(b);
  for (Elem* e = b.head(); e; e = e->next)
    if (e == link.link_raw) {
      if (e->psock == psock) remove(b, e);
      return;
    }
}

}  // namespace sockshim
