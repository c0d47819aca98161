// A domain's shared memory: one file that every member maps MAP_SHARED. A fixed
// header (magic, version, size, generation, the lock, the domain's key), then a
// heap of blocks. Everything in it refers to everything else by offset from
// the start, since each process maps it at another address.
//
// The memory is shared with every process of the user, any of which may be
// buggy: every offset read from it is bounds-checked before use, and what does
// not add up is reported (EUCLEAN and a sentence naming what is wrong) so the
// domain fails closed, never a wild access.
//
// The heap is a tiling of blocks, each with a 16-byte header; the free ones are
// also on a list in ascending order. Every change to the tiling is one 8-byte
// store that leaves a valid tiling, so a process killed at any instruction
// leaves at worst a stale free list and unreachable blocks, which rebuild()
// (run by the next locker after owner death) repairs.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/domain/robust_mutex.h"

namespace sockshim::domain {

inline constexpr uint64_t kArenaMagic = 0x4d49485348434f53;  // "SOCKSHIM" in memory
inline constexpr uint32_t kArenaVersion = 3;                 // 2: maps_root; 3: storage, policy
inline constexpr size_t kMaxKeyBytes = 4200;                 // "policy:" and a PATH_MAX path
inline constexpr uint64_t kBlockAlign = 16;

struct ArenaHeader {
  uint64_t magic;
  uint32_t version;
  uint32_t header_size;  // sizeof(ArenaHeader): the heap starts after it
  uint64_t size;         // of the whole file
  // Bumped by every change made under the lock, so that a process can tell
  // whether what it read before is still current.
  std::atomic<uint64_t> generation;
  RobustMutex lock;     // guards all below and every block
  uint64_t free_head;   // first free block, 0: none
  uint64_t used_bytes;  // in used blocks, headers included
  uint64_t root;        // the domain's root object (its member table), 0: none
  uint64_t maps_root;   // its shared maps (shared_maps.h), 0: none yet
  uint64_t storage;     // its sk_storage values (shared_storage.h), 0: none yet
  uint64_t policy;      // the policy a reload published (shared_policy.h), 0: none
  uint32_t key_len;
  char key[kMaxKeyBytes];
};

struct BlockHeader {
  uint64_t size_used;  // bytes with this header, a multiple of 16; | 1 when in use
  uint64_t next_free;  // free: the next free block (higher), 0 last; used: kUsedTag
};

inline constexpr uint64_t kUsedTag = 0x444553554b434c42;  // "BLKUSED"
inline constexpr uint64_t kHeapStart =
    (sizeof(ArenaHeader) + kBlockAlign - 1) / kBlockAlign * kBlockAlign;
inline constexpr uint64_t kMinBlock = 2 * sizeof(BlockHeader);
inline constexpr uint64_t kMinArenaSize = kHeapStart + kMinBlock;

// A process's view of a mapped arena. Methods other than format() and
// check_header() need the caller to hold header()->lock.
class Arena {
 public:
  Arena(void* base, uint64_t size) noexcept : base_(static_cast<char*>(base)), size_(size) {}

  // Writes a fresh arena over size bytes at base (a new file): header, one
  // free block over the whole heap. -EINVAL if size or key do not fit.
  static int format(void* base, uint64_t size, std::string_view key) noexcept;

  ArenaHeader* header() const noexcept { return reinterpret_cast<ArenaHeader*>(base_); }
  uint64_t size() const noexcept { return size_; }

  // The header as a member must find it: magic, version, sizes, key. Reads
  // only the header, without the lock: safe on any memory of size() bytes.
  int check_header(std::string_view key) noexcept;
  // The whole arena: header, tiling, free list, used bytes, the roots.
  int check(std::string_view key) noexcept;
  // After owner death: re-derives the free list and the used bytes from the
  // tiling, frees every used block whose payload offset is not in keep
  // (sorted; nullptr keeps every used block), and coalesces. -EUCLEAN if the
  // tiling itself is broken.
  int rebuild(const uint64_t* keep, size_t n_keep) noexcept;

  // A zeroed payload of bytes, as its offset, or 0 (-ENOMEM: full; -EUCLEAN:
  // corrupt) with the error in *err.
  uint64_t alloc(uint64_t bytes, int* err) noexcept;
  int free(uint64_t payload) noexcept;
  // The payload size of the used block at payload, or 0 when it is none.
  uint64_t payload_size(uint64_t payload) noexcept;

  // A pointer to len bytes at off, or nullptr if they are not all inside the
  // heap or off is misaligned for T.
  template <typename T>
  T* at(uint64_t off, uint64_t len = sizeof(T)) const noexcept {
    if (off < kHeapStart || off > size_ || len > size_ - off || off % alignof(T) != 0)
      return nullptr;
    return reinterpret_cast<T*>(base_ + off);
  }

  // What was wrong the last time a method returned -EUCLEAN.
  const char* why() const noexcept { return why_; }
  // Records what is wrong (printf-style) for why(); returns -EUCLEAN.
  int corrupt(const char* fmt, ...) noexcept __attribute__((format(printf, 2, 3)));

 private:
  BlockHeader* block(uint64_t off, const char* what) noexcept;
  void bump() noexcept { header()->generation.fetch_add(1, std::memory_order_release); }

  char* base_;
  uint64_t size_;
  char why_[256] = "";
};

}  // namespace sockshim::domain
