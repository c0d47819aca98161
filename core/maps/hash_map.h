// BPF_MAP_TYPE_HASH (kernel/bpf/hashtab.c): at most max_entries keys of
// key_size bytes, each with a value of value_size bytes. Buckets are
// roundup_pow_of_two(max_entries), picked with jhash and a random seed, so
// get_next_key walks in no fixed order, as in the kernel. An update allocates
// a new element and replaces the old one, and elements are reused, never
// freed, while the map lives: a value pointer a program holds stays memory of
// the map, as with the kernel's preallocated elements.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/maps/bpf_map.h"

namespace sockshim {

class HashMap final : public BpfMap {
 public:
  // spec must have passed map_create_check; -ENOMEM without the bucket array.
  static int create(policy::MapSpec spec, std::unique_ptr<HashMap>* out) noexcept;
  ~HashMap() override;

  int update_sys(const void* key, const void* value, uint64_t flags) noexcept override;
  int lookup_sys(const void* key, void* value) noexcept override;
  int delete_sys(const void* key) noexcept override;
  int get_next_key_sys(const void* key, void* next_key) noexcept override;
  void after_fork_child() noexcept override;

  // The value of key in place (what a program's lookup returns), or null.
  // It stays memory of the map; an update or delete may reuse it meanwhile.
  unsigned char* value(const void* key) noexcept;

  uint32_t count() const noexcept { return count_.load(std::memory_order_relaxed); }

 private:
  struct Elem {
    Elem* next;
    uint32_t hash;
    unsigned char* key() noexcept { return reinterpret_cast<unsigned char*>(this + 1); }
  };
  HashMap(policy::MapSpec spec, Elem** buckets, uint32_t n_buckets);

  unsigned char* value_of(Elem* e) const noexcept { return e->key() + key_room_; }
  Elem** bucket(uint32_t hash) const noexcept { return &buckets_[hash & (n_buckets_ - 1)]; }
  Elem* find(uint32_t hash, const void* key) const noexcept;  // under lock_
  Elem* alloc_elem() noexcept;                                // under lock_; null: ENOMEM
  void unlink(Elem* e) noexcept;                              // under lock_

  std::mutex lock_;
  Elem** buckets_;  // calloc'ed: a large map's untouched buckets cost no memory
  uint32_t n_buckets_;
  uint32_t seed_;
  size_t key_room_;       // round_up(key_size, 8)
  size_t elem_size_;      // the header, key_room_ and value_size rounded up to 8
  Elem* free_ = nullptr;  // elements to reuse, linked by next
  std::vector<std::unique_ptr<unsigned char[]>> chunks_;
  std::atomic<uint32_t> count_{0};
};

}  // namespace sockshim
