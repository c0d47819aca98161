// BPF_MAP_TYPE_SK_STORAGE: a value of value_size bytes per socket
// (net/core/bpf_sk_storage.c). A value lives until it is deleted, its socket's
// last reference goes (sk_storage_free) or the map is freed. Values are found
// by the socket record's pool index, in chunks allocated on first use.
//
// A map of the policy keeps its values in the process's domain
// (core/domain/shared_storage.h): one value per socket for every process
// holding it. Its slot here then only remembers where that value is mapped.
// Without a domain (or once it failed closed), and for maps made with bpf(),
// the values are the process's own.
#pragma once

#include <atomic>
#include <memory>

#include "core/domain/shared_storage.h"
#include "core/maps/bpf_map.h"
#include "core/sock/socket_pool.h"
#include "core/sock/spinlock.h"

namespace sockshim {

class Socket;

class SkStorage final : public BpfMap {
 public:
  // spec must have passed map_create_check.
  explicit SkStorage(policy::MapSpec spec);
  ~SkStorage() override;  // frees every value

  // Syscall side, key = the socket's int fd (bpf_fd_sk_storage_*).
  int update_sys(const void* key, const void* value, uint64_t flags) noexcept override;
  int lookup_sys(const void* key, void* value) noexcept override;
  int delete_sys(const void* key) noexcept override;
  int get_next_key_sys(const void* key, void* next_key) noexcept override;

  // By socket (the programs' side and tests). The caller holds a reference on sk.
  int update(Socket* sk, const void* value, uint64_t flags) noexcept;  // EINVAL/EEXIST/ENOENT
  int lookup(const Socket* sk, void* value) noexcept;                  // ENOENT
  int remove(Socket* sk) noexcept;                                     // ENOENT
  // bpf_sk_storage_get: the value in place, created from init (or zeroed)
  // when create is set and there is none; null otherwise. The pointer stays
  // valid while the caller's reference on sk and the map live.
  unsigned char* get(Socket* sk, bool create, const void* init) noexcept;

  // A map of the policy: its values are the domain's.
  void share_in_domain() noexcept { shared_ = true; }
  // Values this process has (or holds in the domain).
  uint32_t count() const noexcept { return count_.load(std::memory_order_relaxed); }
  void after_fork_child() noexcept override;

 private:
  friend void sk_storage_free(Socket* sk) noexcept;
  friend void sk_storage_clone(Socket* listener, Socket* child) noexcept;
  struct Elem {
    uint64_t cookie;        // of the socket the value belongs to
    domain::ValueRef held;  // the domain's value (rec null: the value follows)
    unsigned char* value() noexcept { return reinterpret_cast<unsigned char*>(this + 1); }
  };
  // The values of SocketPool::kSlabSize consecutive socket records.
  struct Chunk {
    SpinLock lock;
    Elem* elems[SocketPool::kSlabSize] = {};
  };
  Chunk* chunk(const Socket* sk, bool create) noexcept;
  Elem* create_elem(Socket* sk, Elem** slot, const void* init) noexcept;  // under the chunk lock
  bool erase(Socket* sk) noexcept;
  bool in_domain() const noexcept;
  // The domain's value of sk, held from now on (the slot remembers it); null
  // when there is none and create is not set, or on error (*err). Under the
  // chunk lock.
  Elem* held_elem(Socket* sk, Elem** slot, bool create, int* err) noexcept;
  // The process's own value in slot, if it is sk's.
  static Elem* own_elem(const Socket* sk, Elem* slot) noexcept {
    return slot && slot->cookie == sk->cookie && !slot->held.rec ? slot : nullptr;
  }

  std::unique_ptr<std::atomic<Chunk*>[]> chunks_;  // SocketPool::kMaxSlabs
  std::atomic<uint32_t> count_{0};
  bool shared_ = false;
};

// The socket's last reference went: its values in every map go
// (bpf_sk_storage_free at __sk_destruct).
void sk_storage_free(Socket* sk) noexcept;

// accept() made child from listener: copy the listener's values in maps
// created with BPF_F_CLONE, and only those (bpf_sk_storage_clone).
void sk_storage_clone(Socket* listener, Socket* child) noexcept;

// In a fork child: frees the lock of the list of live maps.
void sk_storage_after_fork_child() noexcept;

}  // namespace sockshim
