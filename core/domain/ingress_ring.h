// A socket's ingress queue in shared memory (docs/domains.md, "The ingress
// ring"): a bounded ring of records that any process of the domain appends to
// (redirects from several sockets) and whichever holder reads first takes
// from. A record is bytes, a datagram (read whole, with its source address),
// or a marker: EOF (stays at the head: every later read sees it) or a socket
// error (taken by one read).
//
// Producers serialise on one robust lock, readers on another, and each side
// commits by one 8-byte store of its own word: the producer's (tail, bytes
// in), the reader's (head record, bytes out). A process killed at any
// instruction leaves either the old word or the new one, never a torn record
// or a half-taken one, and the next locker (told the owner died) only checks
// the ring: there is nothing to repair.
//
// Waiting: readers sleep on data_seq, writers waiting for room on space_seq,
// with FUTEX_WAIT on the shared words; the other side wakes them (one
// syscall) only while its waiters count says someone sleeps, before it lets
// its lock go, so that a waker killed in between is found by the next locker,
// which wakes everyone. Poll and epoll learn of changes through a notify hook
// that the process making the change runs, only when a watcher armed it
// (arm_notify).
//
// The memory is shared with every process of the user: every position and
// length read from it is checked before use; what does not add up makes the
// call return -EUCLEAN, and why() says what was wrong.
#pragma once

#include <netinet/in.h>
#include <sys/uio.h>
#include <time.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/domain/arena.h"
#include "core/domain/robust_mutex.h"

namespace sockshim::domain {

inline constexpr uint64_t kRingMagic = 0x31474e4952474e49;  // "INGRING1" in memory
inline constexpr uint32_t kRingMinCapacity = 64;
inline constexpr uint32_t kRingMaxCapacity = 1u << 30;  // positions fit 31 bits
inline constexpr size_t kRingMaxName = sizeof(sockaddr_in6);
// How long a ring operation waits for a lock held by a live process.
inline constexpr int kRingLockTimeoutMs = 2000;

// A record's kind (RingRecord::flags): none of them, stream bytes.
inline constexpr uint16_t kRecMessage = 1;  // a datagram: read whole, one per read
inline constexpr uint16_t kRecEof = 2;      // no bytes; stays at the head
inline constexpr uint16_t kRecError = 4;    // no bytes; err, taken by one read

// What precedes each record's name and bytes in the ring (which they may
// wrap around).
struct RingRecord {
  uint32_t len;        // payload bytes
  uint16_t flags;      // kRec*
  uint8_t name_len;    // source address bytes after the header (messages only)
  uint8_t tag;         // kRecordTag: a scribbled header is caught early
  uint32_t seq_start;  // the ring's bytes_in before this record (mod 2^32)
  uint32_t err;        // a kRecError marker's errno
};
static_assert(sizeof(RingRecord) == 16);
inline constexpr uint8_t kRecordTag = 0xa5;

// The ring's header in shared memory; the data area follows at data_offset.
// Positions run over [0, 2 * capacity) so that a full ring differs from an
// empty one.
struct IngressRingHeader {
  uint64_t magic;
  uint32_t capacity;     // bytes of the data area: records with their headers
  uint32_t data_offset;  // from the header
  RobustMutex write_lock;
  RobustMutex read_lock;
  // The producers' word: tail position | bytes_in << 32 (payload bytes ever
  // appended, mod 2^32). Written under write_lock.
  std::atomic<uint64_t> prod;
  std::atomic<uint32_t> data_seq;  // bumped by every append: readers sleep on it
  std::atomic<uint32_t> readers_waiting;
  char pad_prod[48];  // the two sides' words on separate cache lines
  // The readers' word: head position (the first record not wholly taken) |
  // bytes_out << 32 (payload bytes ever taken). Written under read_lock. The
  // head record's taken part is bytes_out - its seq_start.
  std::atomic<uint64_t> cons;
  std::atomic<uint32_t> space_seq;  // bumped by every read that takes: writers sleep on it
  std::atomic<uint32_t> writers_waiting;
  char pad_cons[48];
  std::atomic<uint32_t> notify;      // kNotify* bits armed by watchers
  std::atomic<uint32_t> recoveries;  // locks taken over from a dead owner
};

// Events a watcher can ask the notify hook for (arm_notify).
inline constexpr uint32_t kNotifyData = 1;   // a record was appended
inline constexpr uint32_t kNotifySpace = 2;  // a read made room
inline constexpr uint32_t kNotifyEmpty = 4;  // a read left the ring empty

// The hook a process runs when it changed the ring in a way a watcher armed:
// events are the armed bits it took (each armed event runs one hook, in
// whichever process gets there first). Runs outside the ring's locks.
using RingNotifyFn = void (*)(void* ctx, uint32_t events) noexcept;

// What a read found (recv).
struct RingRead {
  size_t copied = 0;     // bytes into the iovecs
  size_t len = 0;        // a datagram's whole length (more than copied: truncated)
  bool message = false;  // one datagram was read
  bool eof = false;      // the head is the EOF marker (nothing copied)
  int err = 0;           // a socket error marker was read (nothing copied)
  uint8_t name_len = 0;  // a datagram's source, 0 when it has none
  alignas(8) uint8_t name[kRingMaxName];
};

// Payload bytes in and out so far (mod 2^32), and lock recoveries.
struct RingCounters {
  uint32_t bytes_in = 0;
  uint32_t bytes_out = 0;
  uint32_t recoveries = 0;
};

// One process's view of a ring.
class IngressRing {
 public:
  // Shared memory a ring of capacity data bytes takes.
  static uint64_t bytes_for(uint32_t capacity) noexcept;
  // Writes an empty ring over len bytes at mem (before anyone else sees it).
  // -EINVAL: capacity out of [kRingMinCapacity, kRingMaxCapacity] or len too small.
  static int format(void* mem, uint64_t len, uint32_t capacity) noexcept;
  // Allocates and formats a ring in a (the caller holds its lock): the
  // payload's offset, or 0 with -errno in *err.
  static uint64_t create(Arena& a, uint32_t capacity, int* err) noexcept;

  // Views the ring at mem (len bytes), at the arena's offset off: 0, or
  // -EUCLEAN when its header does not add up (why()). Reads only the header.
  int attach(void* mem, uint64_t len) noexcept;
  int attach(Arena& a, uint64_t off) noexcept;
  // The whole ring: header, words, every queued record. Takes the read lock.
  int check() noexcept;

  // The writer's process hook for armed events (nullptr: none; the events
  // then stay armed for a process that has one).
  void set_notify(RingNotifyFn fn, void* ctx) noexcept {
    notify_fn_ = fn;
    notify_ctx_ = ctx;
  }

  // Appends bytes: stream bytes (flags 0) as many as fit, returning how many
  // (-EAGAIN when none does); a message (kRecMessage) whole with its source
  // name (at most kRingMaxName bytes), -EAGAIN when it does not fit now,
  // -EMSGSIZE when it never can. Empty stream bytes append nothing (0); an
  // empty message is a record. Never waits for room (wait_writable does).
  ssize_t append(std::span<const uint8_t> bytes, uint16_t flags = 0,
                 std::span<const uint8_t> name = {}) noexcept;
  // An EOF (kRecEof) or error (kRecError, err > 0) marker after what is
  // queued. 0 or -EAGAIN (no room for its header).
  int append_marker(uint16_t kind, int err = 0) noexcept;

  // Reads into iov (MSG_PEEK in flags: leaves it queued). From a stream
  // record it copies across stream records up to the iovecs' length, leaving
  // the rest of a record; a message is read alone and whole (cut to the
  // iovecs, *out says its length); a marker is read alone (an error one is
  // taken). 0 with *out filled, -EAGAIN when the ring is empty, -EUCLEAN,
  // -ETIMEDOUT (a lock held by a stopped process).
  int recv(const iovec* iov, size_t iovcnt, int flags, RingRead* out) noexcept;

  // Readiness, without a lock. readable: a record (bytes or a marker) is
  // queued. queued_bytes: payload bytes queued (FIONREAD of a stream).
  // writable: a message of payload bytes with a name of name_len would fit
  // (a stream writer asks for 1). room: free data bytes, headers included.
  bool readable() const noexcept;
  uint64_t queued_bytes() const noexcept;
  bool writable(size_t payload, size_t name_len = 0) const noexcept;
  uint64_t room() const noexcept;
  RingCounters counters() const noexcept;

  // Sleep until readable / writable(payload, name_len), deadline (absolute
  // CLOCK_MONOTONIC, nullptr: none) or a signal: 0, -ETIMEDOUT, -EINTR;
  // -EMSGSIZE when payload can never fit. Wake-ups may be spurious for a
  // caller racing other readers: it reads, and waits again on -EAGAIN.
  int wait_readable(const timespec* deadline) noexcept;
  int wait_writable(size_t payload, size_t name_len, const timespec* deadline) noexcept;

  // Arms events (kNotify*) for the next change's hook, and returns those of
  // them that already hold (data: readable; space: writable(1); empty: not
  // readable), for which the caller should not wait for the hook.
  uint32_t arm_notify(uint32_t events) noexcept;

  // Wakes every sleeper and runs the hook for every armed event. A process
  // killed after its commit and before its wake-up (which happen under its
  // lock) leaves sleepers asleep until the next locker takes the lock over
  // (it calls this) or until whoever finds the process dead (the domain's
  // reaping of members) calls it.
  void wake_all() noexcept;

  uint32_t capacity() const noexcept { return cap_; }
  const char* why() const noexcept { return why_; }

 private:
  int corrupt(const char* fmt, ...) noexcept __attribute__((format(printf, 2, 3)));
  int lock(RobustMutex& m) noexcept;
  int check_records(uint64_t prod, uint64_t cons) noexcept;
  int read_record(uint32_t pos, uint32_t avail, RingRecord* r) noexcept;
  int positions(uint64_t prod, uint64_t cons, uint32_t* used) noexcept;
  ssize_t append_locked(std::span<const uint8_t> bytes, uint16_t flags,
                        std::span<const uint8_t> name, int err) noexcept;
  int recv_locked(const iovec* iov, size_t iovcnt, bool peek, RingRead* out, bool* took) noexcept;
  void copy_in(uint32_t pos, const void* src, size_t n) noexcept;
  void copy_out(uint32_t pos, void* dst, size_t n) const noexcept;
  uint32_t advance(uint32_t pos, uint64_t n) const noexcept;
  void unlock(RobustMutex& m) noexcept;
  void wake_readers() noexcept;
  void wake_writers() noexcept;
  void fire(uint32_t events) noexcept;

  IngressRingHeader* h_ = nullptr;
  uint8_t* data_ = nullptr;
  uint32_t cap_ = 0;  // kept here: a scribbled header cannot move the bounds
  RingNotifyFn notify_fn_ = nullptr;
  void* notify_ctx_ = nullptr;
  // Until attached; then once something did not add up. Atomics: a process's
  // threads share its view.
  std::atomic<bool> failed_{true};
  std::atomic<bool> kick_{false};  // a lock was taken over from a dead owner: wake_all() after
  char why_[256] = "not attached";
};

}  // namespace sockshim::domain
