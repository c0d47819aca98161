// A domain's sk_storage values in its arena: for each SK_STORAGE map of the
// domain's policy (by name, value size and flags) and each socket (by kernel
// cookie), one value that every process holding the socket reads and writes,
// as the kernel keeps one value per socket whatever process holds it. Every
// function needs the arena's lock, except reading a value in place.
//
// Layout, all by offset (docs/domains.md "sk_storage in the arena"):
//   header()->storage -> StorageRoot: socket buckets (cookie hash ->
//     chain of StorageSock) and the map descriptors;
//   StorageSock: its holders (chain of StorageHolder, one per process that
//     used a value of the socket) and its values (chain of ValueRec, one per
//     map);
//   ValueRec: two value slots and a state word (present, which slot).
// Blocks are filled before they are linked and every link is one 8-byte
// store. A value's blocks stay while its socket has a holder, so a pointer a
// process got to a value stays valid while it holds the socket: a delete only
// marks it absent, and an update writes the other slot, then switches to it
// with one store (a writer killed half-way leaves the old value whole). The
// socket's records are freed when its last holder lets go.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/domain/arena.h"
#include "core/domain/shared_maps.h"

namespace sockshim::domain {

inline constexpr uint32_t kMaxStorageMaps = 64;
inline constexpr uint32_t kMaxStorageValue =
    0xffff - 128;  // the kernel's BPF_LOCAL_STORAGE_MAX_VALUE_SIZE

// An SK_STORAGE map as the policy defines it.
struct StorageDef {
  std::string_view name;
  uint32_t value_size = 0;
  uint32_t flags = 0;
};

struct StorageDesc {
  char name[kMaxMapName];
  uint32_t value_size, flags;
};

struct StorageRoot {
  uint64_t magic;
  uint32_t n_maps;  // descriptors in use, each whole
  uint32_t reserved;
  uint64_t socks[kSockBuckets];
  StorageDesc map[kMaxStorageMaps];
};

struct StorageSock {
  uint64_t magic;
  uint64_t next;  // in its socket bucket
  uint64_t cookie;
  uint64_t holders;  // chain of StorageHolder
  uint64_t values;   // chain of ValueRec
};

struct StorageHolder {
  uint64_t magic;
  uint64_t next;
  int32_t pid;
  int32_t reserved;
  uint64_t start_time;
};

// state: kValuePresent | slot (0 or 1), or 0 (absent: deleted, or not yet set).
inline constexpr uint64_t kValuePresent = 2;

struct ValueRec {
  uint64_t magic;
  uint64_t next;  // in its socket's values
  uint32_t map;
  uint32_t value_size;
  std::atomic<uint64_t> state;
  uint64_t data;  // 2 × value_size bytes: the two slots
};

// What a process keeps of a value it holds: where its record is mapped.
struct ValueRef {
  ValueRec* rec = nullptr;
  unsigned char* data = nullptr;  // the two slots
  // The current value in place, or nullptr when absent. No lock needed.
  unsigned char* current() const noexcept {
    uint64_t s = rec->state.load(std::memory_order_acquire);
    return s & kValuePresent ? data + (s & 1) * rec->value_size : nullptr;
  }
};

// The value of cookie in map def for holder: holder becomes one of the
// socket's holders (so the value stays while it holds the socket). create:
// records are made when missing (the value itself stays absent); else
// -ENOENT when there is no record. 0, -ENOENT, -ENOMEM, -ENOSPC (past
// kMaxStorageMaps definitions), -EINVAL (a name too long), -EUCLEAN.
int storage_hold(Arena& arena, const StorageDef& def, uint64_t cookie, const Holder& holder,
                 bool create, ValueRef* out) noexcept;
// Writes value into v (flags BPF_ANY, BPF_NOEXIST: -EEXIST if present,
// BPF_EXIST: -ENOENT if absent): the other slot first, then one store.
int storage_write(ValueRef v, const void* value, uint64_t flags) noexcept;
// Marks v absent (its blocks stay for its holders): 0 or -ENOENT.
int storage_delete(ValueRef v) noexcept;
// (pid, start_time) no longer holds cookie: with no holder left, its values go.
int storage_holder_drop(Arena& arena, uint64_t cookie, pid_t pid, uint64_t start_time) noexcept;
// Drops every holder record of the processes in dead (dead members).
int storage_holders_drop_dead(Arena& arena, const Holder* dead, size_t n) noexcept;
// A fork child holds what its parent holds.
int storage_holders_inherit(Arena& arena, const Holder& parent, const Holder& child) noexcept;

// Every present value, for dump and tests.
struct SharedValue {
  std::string map;
  uint64_t cookie;
  std::vector<unsigned char> value;
  std::vector<pid_t> holders;  // by pid
};
int shared_storage_read(Arena& arena, std::vector<SharedValue>* out) noexcept;

// The whole structure checked (fix false) or, after a holder died with the
// lock (fix true), repaired: sockets without a holder dropped. Every block it
// reaches is appended to *keep. false with the arena's why() set when corrupt.
bool shared_storage_check(Arena& arena, bool fix, std::vector<uint64_t>* keep) noexcept;

}  // namespace sockshim::domain
