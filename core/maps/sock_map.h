// BPF_MAP_TYPE_SOCKMAP: an array of max_entries slots, each empty or holding a
// socket's psock (net/core/sock_map.c, struct bpf_stab).
#pragma once

#include <memory>

#include "core/maps/sock_map_base.h"
#include "core/sock/spinlock.h"

namespace sockshim {

class SockMap final : public SockMapBase {
 public:
  // spec must have passed map_create_check.
  explicit SockMap(policy::MapSpec spec);
  ~SockMap() override;  // sock_map_free: every slot lets go of its psock

  int update_elem(const void* key, Socket* sk, uint64_t flags, int fd) noexcept override;
  int lookup_sys(const void* key, void* value) noexcept override;
  int delete_sys(const void* key) noexcept override;
  int get_next_key_sys(const void* key, void* next_key) noexcept override;
  PsockRef lookup_psock(const void* key) noexcept override;
  void unlink(Psock* psock, const PsockLink& link) noexcept override;
  uint32_t count() const noexcept override { return count_.load(std::memory_order_relaxed); }
  void after_fork_child() noexcept override {
    SockMapBase::after_fork_child();
    lock_.reset();
  }

 private:
  // The cookie is kept beside the psock so that lookups need no lock.
  struct Slot {
    std::atomic<uint64_t> cookie{0};
    Psock* psock = nullptr;  // under lock_
  };
  void clear_slot(Slot& slot) noexcept;  // under lock_

  SpinLock lock_;  // stab->lock
  std::unique_ptr<Slot[]> slots_;
  std::atomic<uint32_t> count_{0};
};

}  // namespace sockshim
