// BPF_MAP_TYPE_SOCKHASH: at most max_entries keys of key_size bytes, each
// holding a socket's psock (net/core/sock_map.c, struct bpf_shtab). Buckets are
// picked with the kernel's jhash, so get_next_key walks in the kernel's order.
#pragma once

#include <sched.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "core/maps/sock_map_base.h"
#include "core/sock/spinlock.h"

namespace sockshim {

class SockHash final : public SockMapBase {
 public:
  // spec must have passed map_create_check.
  explicit SockHash(policy::MapSpec spec);
  ~SockHash() override;  // sock_hash_free

  int update_elem(const void* key, Socket* sk, uint64_t flags, int fd) noexcept override;
  int lookup_sys(const void* key, void* value) noexcept override;
  int delete_sys(const void* key) noexcept override;
  int get_next_key_sys(const void* key, void* next_key) noexcept override;
  PsockRef lookup_psock(const void* key) noexcept override;
  void unlink(Psock* psock, const PsockLink& link) noexcept override;
  uint32_t count() const noexcept override { return count_.load(std::memory_order_relaxed); }
  // In a fork child, once for the process: buckets held by the parent's
  // threads become free to take.
  static void new_fork_epoch() noexcept {
    fork_epoch_.store((fork_epoch_.load(std::memory_order_relaxed) + 2) & kEpochBits,
                      std::memory_order_relaxed);
  }

 private:
  struct Elem {
    Elem* next;
    Psock* psock;
    uint64_t cookie;
    uint32_t hash;
    unsigned char* key() noexcept { return reinterpret_cast<unsigned char*>(this + 1); }
  };
  // A bucket is one word: the head pointer and, in its low bits (elements are
  // 16-byte aligned), the lock (bit 0) and the fork epoch of the process that
  // took it (bits 1-3), so the bucket array costs 8 bytes per bucket.
  // A fork child must release the buckets its parent's other threads held;
  // visiting them all cost a pass over the table on every fork (10% of a fork
  // server's time at 65536 entries). Instead the child starts a new epoch,
  // and a locker that finds a bucket held in another epoch knows the holder
  // does not exist in this process and takes the bucket over. Only eight
  // generations of fork children none of which touched such a bucket would
  // bring its epoch round again.
  static constexpr uintptr_t kLocked = 1, kEpochBits = 14, kLowBits = 15;
  static_assert(__STDCPP_DEFAULT_NEW_ALIGNMENT__ > kLowBits);
  static inline std::atomic<uintptr_t> fork_epoch_{0};  // in kEpochBits
  struct Bucket {
    std::atomic<uintptr_t> word{0};
    void lock() noexcept {
      uintptr_t mine = kLocked | fork_epoch_.load(std::memory_order_relaxed);
      for (unsigned spins = 0;; ++spins) {
        uintptr_t w = word.load(std::memory_order_relaxed);
        bool held_here = (w & kLocked) && (w & kEpochBits) == (mine & kEpochBits);
        if (!held_here &&
            word.compare_exchange_weak(w, (w & ~kLowBits) | mine, std::memory_order_acquire,
                                       std::memory_order_relaxed))
          return;
        if (spins > 64) sched_yield();
      }
    }
    void unlock() noexcept { word.fetch_and(~kLowBits, std::memory_order_release); }
    // Under the lock.
    Elem* head() const noexcept {
      return reinterpret_cast<Elem*>(word.load(std::memory_order_relaxed) & ~kLowBits);
    }
    void set_head(Elem* e) noexcept {
      word.store(reinterpret_cast<uintptr_t>(e) | (word.load(std::memory_order_relaxed) & kLowBits),
                 std::memory_order_relaxed);
    }
  };

  uint32_t hash(const void* key) const noexcept;
  Bucket& bucket(uint32_t hash) noexcept { return buckets_[hash & (n_buckets_ - 1)]; }
  Elem* find(Bucket& b, uint32_t hash, const void* key) noexcept;  // under b.lock
  void remove(Bucket& b, Elem* e) noexcept;  // unlinks, unrefs and frees; under b.lock
  Elem* alloc_elem(const void* key, uint32_t hash, Psock* psock, uint64_t cookie) noexcept;
  void free_elem(Elem* e) noexcept;

  uint32_t n_buckets_;
  std::unique_ptr<Bucket[]> buckets_;
  std::atomic<uint32_t> count_{0};
};

}  // namespace sockshim
