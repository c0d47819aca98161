// A domain's sockmaps and sockhashes in its arena: for each map of the
// domain's policy (by name, type, key size, max_entries) its entries, key ->
// socket by kernel cookie (SO_COOKIE); for each socket in any map, its
// holders, one (pid, start time, fd) per process holding it. The domain-wide
// truth that dump and cross-process lookups read; each process's own maps
// (core/maps) stay its fast path. Every function needs the arena's lock.
//
// Layout, all by offset (docs/domains.md "Maps in the arena"):
//   header()->maps_root -> SharedMapsRoot: socket buckets (cookie hash ->
//     chain of SockRec) and the map descriptors, each with its own bucket
//     array (key hash -> chain of EntryRec);
//   SockRec: its holders (chain of HolderRec) and its entries (chain through
//     EntryRec::sock_next, in any map).
// A map bucket chain is the truth for entries; a socket's entry chain is
// derived and rebuilt from them by the repair. Every link and unlink is one
// 8-byte store, blocks are filled before they are linked, so a holder killed
// at any instruction leaves at worst an unreachable block (given back by the
// repair), a socket without holders or entries (dropped by the repair) or a
// stale count (recounted).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/domain/arena.h"

namespace sockshim::domain {

inline constexpr uint32_t kMaxSharedMaps = 64;
inline constexpr uint32_t kSockBuckets = 1024;
inline constexpr uint32_t kMaxMapBuckets = 4096;
inline constexpr uint32_t kMaxMapName = 64;    // with its NUL
inline constexpr uint32_t kMaxSharedKey = 64;  // bytes of a key (policy keys are smaller)

// A map as the policy defines it (type: policy::MapType's value).
struct MapDef {
  std::string_view name;
  uint32_t type = 0;
  uint32_t key_size = 0;
  uint32_t max_entries = 0;
};

// A process holding a socket.
struct Holder {
  pid_t pid = 0;
  uint64_t start_time = 0;
  int fd = -1;
};

struct MapDesc {
  char name[kMaxMapName];
  uint32_t type, key_size, max_entries, n_buckets;
  uint32_t count;    // entries; recounted by the repair
  uint32_t gen;      // bumped by every entry that enters or leaves: read without the lock
  uint64_t buckets;  // uint64_t[n_buckets]; set last: a descriptor is in use once it is
};

struct SharedMapsRoot {
  uint64_t magic;
  uint32_t n_maps;  // descriptors in use, each whole
  uint32_t reserved;
  uint64_t socks[kSockBuckets];
  MapDesc map[kMaxSharedMaps];
};

struct SockRec {
  uint64_t magic;
  uint64_t next;  // in its socket bucket
  uint64_t cookie;
  uint64_t holders;  // chain of HolderRec
  uint64_t entries;  // chain of EntryRec through sock_next
};

struct HolderRec {
  uint64_t magic;
  uint64_t next;
  int32_t pid;
  int32_t fd;
  uint64_t start_time;
};

struct EntryRec {
  uint64_t magic;
  uint64_t next;       // in its map bucket
  uint64_t sock_next;  // in its socket's entries
  uint64_t cookie;
  uint32_t map;
  uint32_t key_size;
  unsigned char key[kMaxSharedKey];
};

// A map as a reader sees it.
struct SharedEntry {
  std::vector<unsigned char> key;
  uint64_t cookie;
  std::vector<Holder> holders;  // by pid
};
struct SharedMap {
  std::string name;
  uint32_t type, key_size, max_entries;
  std::vector<SharedEntry> entries;  // by key bytes
};

// An entry of a process, for an exec'd image to put back in its own maps.
struct HeldEntry {
  std::string map;
  uint32_t type, key_size, max_entries;
  std::vector<unsigned char> key;
  uint64_t cookie;
  int fd;  // the process's fd of the socket
};

// Puts cookie at key in the map def (created on first use; -ENOSPC after
// kMaxSharedMaps definitions, -EINVAL for a name or key too long) and makes
// holder one of its holders (a process already holding it keeps its record).
// What was at key leaves it: the later update wins, as in the kernel.
int shared_map_update(Arena& arena, const MapDef& def, const void* key, uint64_t cookie,
                      const Holder& holder) noexcept;
// Removes the entry at key if it holds cookie (any socket: cookie 0). A socket
// left in no map is forgotten with its holders. 0, or -ENOENT.
int shared_map_delete(Arena& arena, const MapDef& def, const void* key, uint64_t cookie) noexcept;
// The cookie at key, or 0.
uint64_t shared_map_lookup(Arena& arena, const MapDef& def, const void* key, int* err) noexcept;
// The process (pid, start_time) no longer holds cookie (its last fd closed):
// with no holder left, the socket leaves every map. 0 or -EUCLEAN.
int sock_holder_drop(Arena& arena, uint64_t cookie, pid_t pid, uint64_t start_time) noexcept;
// Drops every holder record of the processes in dead (dead members).
int sock_holders_drop_dead(Arena& arena, const Holder* dead, size_t n) noexcept;
// A fork child: holds what its parent holds, with the same fds.
int sock_holders_inherit(Arena& arena, const Holder& parent, const Holder& child) noexcept;
// An exec'd image (pid, start_time): each of its holder records takes the fd
// fd_of(recorded fd, cookie, ctx) gives (the socket may have moved, as an
// inetd child's dup2 to 0 and 1), or is dropped when that is -1 (the exec
// closed it: O_CLOEXEC).
int sock_holders_after_exec(Arena& arena, pid_t pid, uint64_t start_time,
                            int (*fd_of)(int fd, uint64_t cookie, void* ctx), void* ctx) noexcept;
// The entries of every map whose socket (pid, start_time) holds, with its fd.
int shared_entries_held(Arena& arena, pid_t pid, uint64_t start_time,
                        std::vector<HeldEntry>* out) noexcept;
// Where the generation word of the map def is: stable for the arena's life,
// read it lock-free with shared_map_gen. nullptr while def has no descriptor
// (nothing entered it yet) or on error (*err).
const uint32_t* shared_map_gen_word(Arena& arena, const MapDef& def, int* err) noexcept;
// A map's generation, without the lock.
inline uint32_t shared_map_gen(const uint32_t* gen_word) noexcept {
  return __atomic_load_n(gen_word, __ATOMIC_ACQUIRE);
}
// Every map and its entries, for dump. 0, -ENOMEM or -EUCLEAN.
int shared_maps_read(Arena& arena, std::vector<SharedMap>* out) noexcept;

// The whole structure checked (fix false) or, after a holder died with the
// lock (fix true), repaired: half-made sockets dropped, entry chains and
// counts rebuilt; every block it reaches is appended to *keep. false with the
// arena's why() set when it is corrupt beyond that.
bool shared_maps_check(Arena& arena, bool fix, std::vector<uint64_t>* keep) noexcept;

}  // namespace sockshim::domain
