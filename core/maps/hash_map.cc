#include "core/maps/hash_map.h"

#include <errno.h>
#include <sys/random.h>

#include <bit>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/maps/jhash.h"
#include "core/sock/fork_reset.h"

namespace sockshim {

namespace {

size_t round8(size_t n) noexcept {
  return (n + 7) & ~size_t{7};
}

// Elements allocated at a time once the map has grown past the first ones.
constexpr size_t kChunkElems = 64;

}  // namespace

int HashMap::create(policy::MapSpec spec, std::unique_ptr<HashMap>* out) noexcept {
  uint32_t n = std::bit_ceil(spec.max_entries);
  auto** buckets = static_cast<Elem**>(calloc(n, sizeof(Elem*)));
  if (!buckets) return -ENOMEM;
  out->reset(new (std::nothrow) HashMap(std::move(spec), buckets, n));
  if (!*out) {
    free(buckets);
    return -ENOMEM;
  }
  return 0;
}

HashMap::HashMap(policy::MapSpec spec, Elem** buckets, uint32_t n_buckets)
    : BpfMap(std::move(spec)),
      buckets_(buckets),
      n_buckets_(n_buckets),
      key_room_(round8(key_size())),
      elem_size_(sizeof(Elem) + key_room_ + round8(value_size())) {
  // htab->hashrnd
  if (getrandom(&seed_, sizeof seed_, GRND_NONBLOCK) != sizeof seed_)
    seed_ = static_cast<uint32_t>(reinterpret_cast<uintptr_t>(this) >> 4);
}

HashMap::~HashMap() {
  free(buckets_);
}

HashMap::Elem* HashMap::find(uint32_t hash, const void* key) const noexcept {
  for (Elem* e = *bucket(hash); e; e = e->next)
    if (e->hash == hash && std::memcmp(e->key(), key, key_size()) == 0) return e;
  return nullptr;
}

HashMap::Elem* HashMap::alloc_elem() noexcept {
  if (!free_) {
    size_t n = std::min<size_t>(kChunkElems, size_t{max_entries()} + 1);
    auto* chunk = new (std::nothrow) unsigned char[n * elem_size_];
    if (!chunk) return nullptr;
    try {
      chunks_.emplace_back(chunk);
    } catch (const std::bad_alloc&) {
      delete[] chunk;
      return nullptr;
    }
    for (size_t i = n; i-- > 0;) {
      auto* e = reinterpret_cast<Elem*>(chunk + i * elem_size_);
      e->next = free_;
      free_ = e;
    }
  }
  Elem* e = free_;
  free_ = e->next;
  return e;
}

void HashMap::unlink(Elem* e) noexcept {
  Elem** p = bucket(e->hash);
  while (*p != e) p = &(*p)->next;
  *p = e->next;
}

int HashMap::update_sys(const void* key, const void* value, uint64_t flags) noexcept {
  // htab_map_update_elem
  if ((flags & ~BPF_F_LOCK) > BPF_EXIST) return -EINVAL;
  uint32_t h = jhash(key, key_size(), seed_);
  std::lock_guard g(lock_);
  Elem* old = find(h, key);
  if (old && flags == BPF_NOEXIST) return -EEXIST;
  if (!old && flags == BPF_EXIST) return -ENOENT;
  if (!old && count_.load(std::memory_order_relaxed) >= max_entries()) return -E2BIG;
  Elem* e = alloc_elem();
  if (!e) return -ENOMEM;
  e->hash = h;
  std::memcpy(e->key(), key, key_size());
  std::memcpy(value_of(e), value, value_size());
  // The new element goes first in its bucket, then the old one leaves.
  Elem** head = bucket(h);
  e->next = *head;
  *head = e;
  if (old) {
    unlink(old);
    old->next = free_;
    free_ = old;
  } else {
    count_.fetch_add(1, std::memory_order_relaxed);
  }
  return 0;
}

int HashMap::lookup_sys(const void* key, void* value) noexcept {
  uint32_t h = jhash(key, key_size(), seed_);
  std::lock_guard g(lock_);
  Elem* e = find(h, key);
  if (!e) return -ENOENT;
  std::memcpy(value, value_of(e), value_size());
  return 0;
}

unsigned char* HashMap::value(const void* key) noexcept {
  uint32_t h = jhash(key, key_size(), seed_);
  std::lock_guard g(lock_);
  Elem* e = find(h, key);
  return e ? value_of(e) : nullptr;
}

int HashMap::delete_sys(const void* key) noexcept {
  uint32_t h = jhash(key, key_size(), seed_);
  std::lock_guard g(lock_);
  Elem* e = find(h, key);
  if (!e) return -ENOENT;
  unlink(e);
  e->next = free_;
  free_ = e;
  count_.fetch_sub(1, std::memory_order_relaxed);
  return 0;
}

int HashMap::get_next_key_sys(const void* key, void* next_key) noexcept {
  // htab_map_get_next_key: the element after key in its bucket, else the
  // first of the following buckets; no key or an unknown one starts over.
  std::lock_guard g(lock_);
  uint32_t i = 0;
  if (key) {
    uint32_t h = jhash(key, key_size(), seed_);
    if (Elem* e = find(h, key)) {
      if (e->next) {
        std::memcpy(next_key, e->next->key(), key_size());
        return 0;
      }
      i = (h & (n_buckets_ - 1)) + 1;
    }
  }
  for (; i < n_buckets_; ++i)
    if (Elem* e = buckets_[i]) {
      std::memcpy(next_key, e->key(), key_size());
      return 0;
    }
  return -ENOENT;
}

void HashMap::after_fork_child() noexcept {
  fork_reset_if_held(lock_);
}

}  // namespace sockshim
