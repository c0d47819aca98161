// A domain socket's ingress queue shared by its holders: an ingress ring
// (ingress_ring.h) in a file of its own under the domain directory,
// "ring-<cookie in hex>" (0600, sparse), so that bytes queued for the socket
// are read by whichever holder reads first, whatever process queued them.
//
// The file starts with a page naming the processes that watch the ring (the
// holders that attached it, kMaxRingWatchers at most); the ring follows. The
// file is made whole under a temporary name and linked into place, and is
// removed when its last watcher detaches, all under the domain's lock, so a
// process never attaches a file that is being removed.
//
// Doorbells: each process of the domain that watches a ring has a FIFO
// "bell-<pid>" in the domain directory, which it reads (its event loop
// watches it). A change to the ring that a watcher armed (arm_notify) runs
// the ring's notify hook in the process that made it, which writes one byte
// to every watcher's bell: a process's readers hear of bytes queued, taken or
// made room for by another process without polling.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>

#include "core/domain/ingress_ring.h"
#include "core/sock/socket.h"

namespace sockshim::domain {

class Domain;

inline constexpr uint64_t kSockRingMagic = 0x32474e49524b4f53;  // "SOKRING2" in memory
inline constexpr uint32_t kMaxRingWatchers = 16;
inline constexpr uint64_t kSockRingHeaderBytes = 4096;
inline constexpr uint32_t kSockRingMinCapacity = 64 << 10;
inline constexpr uint32_t kSockRingMaxCapacity = 2 << 20;

// The file's first page.
struct SockRingFileHeader {
  uint64_t magic;
  uint64_t cookie;
  uint64_t ring_bytes;                              // the ring's, from kSockRingHeaderBytes on
  std::atomic<int32_t> watchers[kMaxRingWatchers];  // pids, 0: free slot
  // The socket's addresses when the ring was made (len 0: unknown); its TCP
  // peer is the socket that has them swapped.
  SockAddr local, remote;
  // 1 + the bytes the TCP peer had written by TCP when it first redirected
  // into the ring (the largest told); 0: none told.
  std::atomic<uint64_t> tcp_written;
};
static_assert(sizeof(SockRingFileHeader) <= kSockRingHeaderBytes);

// The ring file's name for cookie.
std::string sock_ring_name(uint64_t cookie);
// The bell FIFO's name for pid.
std::string ring_bell_name(pid_t pid);

// This process's view of one socket's ring.
class SockRing {
 public:
  // Attaches the ring of cookie in d, creating it with capacity (clamped to
  // [kSockRingMinCapacity, kSockRingMaxCapacity]) when there is none, and
  // makes this process one of its watchers. nullptr with -errno in *err
  // (-ENOSPC: kMaxRingWatchers live processes watch it already). A ring made
  // here records the socket's addresses, when given.
  static SockRing* attach(Domain& d, uint64_t cookie, uint32_t capacity, int* err,
                          const SockAddr* local = nullptr,
                          const SockAddr* remote = nullptr) noexcept;
  // The ring of cookie as a writer that does not hold the socket sees it:
  // attached once per process (kept for its life), never created, never
  // watched (the file goes with the socket's last holder; appends to it then
  // reach nobody, as bytes to a closed socket). nullptr when no holder has
  // attached one.
  static SockRing* peer(Domain& d, uint64_t cookie) noexcept;
  // Stops watching (this process); the last watcher removes the file. The
  // object is deleted.
  void detach() noexcept;

  IngressRing& ring() noexcept { return ring_; }

  // Bytes a socket's TCP peer sent by TCP before it redirected into the
  // socket's ring come first: the peer (the socket with addresses local and
  // remote, when the ring's socket has them swapped) tells how many it had
  // written, and the socket's reader takes that many from the socket before
  // the ring's first byte. false: local, remote is not the ring's peer.
  bool tell_tcp_written(const SockAddr& local, const SockAddr& remote, uint64_t bytes) noexcept;
  // What the peer told; false when it told nothing.
  bool tcp_written_before(uint64_t* bytes) const noexcept;
  uint64_t cookie() const noexcept { return cookie_; }

  // In a fork child: every ring the process has attached is watched by the
  // child too (the parent's mapping is the child's).
  static void after_fork_child() noexcept;

 private:
  SockRing() = default;
  static SockRing* map_file(Domain& d, uint64_t cookie, uint32_t capacity, bool holder, int* err,
                            const SockAddr* local, const SockAddr* remote) noexcept;
  ~SockRing();
  bool watch(pid_t pid) noexcept;
  static void ring_bells(void* self, uint32_t events) noexcept;

  SockRingFileHeader* hdr_ = nullptr;
  uint64_t map_len_ = 0;
  uint64_t cookie_ = 0;
  Domain* domain_ = nullptr;
  IngressRing ring_;
  SockRing* next_ = nullptr;  // the process's attached rings
  SockRing* prev_ = nullptr;
};

// This process's bell: the FIFO's read end (O_RDWR, non-blocking), made on
// first use and made again after a fork (-1: the process has no domain, or it
// could not be made). Readable while someone rang it; drain_bell() empties it.
int own_ring_bell() noexcept;
void drain_bell(int fd) noexcept;

}  // namespace sockshim::domain
