// The psock (struct sk_psock): what a socket carries while it sits in at least
// one sockmap or sockhash. One per socket, created at its first insertion,
// shared by every map and key that holds it, dropped when its last reference
// goes. Each map slot holds one reference and one PsockLink; the send and
// receive paths take temporary references with psock_get().
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <vector>

#include "core/sock/socket.h"
#include "core/sock/spinlock.h"
#include "policy/spec.h"

namespace sockshim {

class Socket;
class SockMapBase;
struct PsockExtSlot;

// The programs a psock runs (struct sk_psock_progs), copied from a map at
// insertion and never reached by a later attach or detach on that map.
struct PsockProgs {
  std::atomic<const policy::Program*> msg_parser{nullptr};  // BPF_SK_MSG_VERDICT
  std::atomic<const policy::Program*> stream_parser{nullptr};
  std::atomic<const policy::Program*> stream_verdict{nullptr};
  std::atomic<const policy::Program*> skb_verdict{nullptr};
};

// One map slot holding the psock (struct sk_psock_link).
struct PsockLink {
  SockMapBase* map = nullptr;
  const void* link_raw = nullptr;  // the slot (sockmap) or the element (sockhash)
  uint32_t hash = 0;               // sockhash bucket hash: close never reads a freed element
};

// A list of links: an insertion allocates its node before taking any lock
// (sk_psock_init_link) and splices it in under them, which cannot fail.
using PsockLinks = std::list<PsockLink>;

// How received bytes reach the programs (sock_map_link): nothing, the stream
// parser + stream verdict, or a verdict alone. The kernel's saved_data_ready.
enum class PsockRx : uint8_t { none, strparser, verdict };

using SkMsgBytes = std::vector<uint8_t>;

// A datagram queued when its process forked is held by every process that
// inherited the queue; each holds this eventfd (count 1), and the first to
// read it takes the datagram, the others drop their copies. Closed with the
// message.
class SkMsgClaim {
 public:
  SkMsgClaim() = default;
  SkMsgClaim(SkMsgClaim&& o) noexcept : fd(o.fd) { o.fd = -1; }
  SkMsgClaim& operator=(SkMsgClaim&&) = delete;
  ~SkMsgClaim();
  int fd = -1;
};

// One queued message (struct sk_msg on ingress_msg). A datagram socket's
// reader takes one message per read (sockshim keeps boundaries, §7); a
// datagram the engine read keeps its source for recvfrom. A stream message
// pays one null pointer and one int for that.
struct SkMsgIngress {
  SkMsgBytes bytes;
  std::unique_ptr<SockAddr> name;
  SkMsgClaim claim;
};

class Psock {
 public:
  Socket* sk() const noexcept { return sk_; }
  uint32_t refcnt() const noexcept { return refcnt_.load(std::memory_order_relaxed); }

 private:
  // First, so the small fields below pack beside it.
  Socket* sk_ = nullptr;
  std::atomic<uint32_t> refcnt_{0};

 public:
  SpinLock link_lock;  // guards links and rx
  PsockRx rx = PsockRx::none;
  SpinLock ingress_lock;  // guards ingress_* and the send state below
  std::atomic<bool> tx_enabled{false};

  PsockProgs progs;

  // The map slots holding this psock.
  PsockLinks links;

  // Bytes waiting for the application (ingress_msg) and send-side state. All
  // of it is discarded when the psock is dropped.
  std::list<SkMsgIngress> ingress_msg;
  size_t ingress_bytes = 0;
  SkMsgBytes cork;  // corked send bytes not yet given to the verdict
  uint32_t cork_bytes = 0;
  uint32_t apply_bytes = 0;
  std::atomic<uint64_t> generation{0};  // bumped by psock_init: state kept beside a psock resets
  // The state kept beside this psock (core/psock_ext.cc): set on first use and
  // never changed, as psocks are recycled, never freed.
  std::atomic<PsockExtSlot*> ext_slot{nullptr};

  // While the receive engine reads the socket (core/sk_psock_rx.cc) its reader
  // sees only ingress_msg, then what the engine says is due; after a stop, until
  // the bytes the engine took have gone where their verdict sent them. Under
  // ingress_lock.
  bool rx_reads = false;
  bool rx_eof = false;      // EOF is due: every byte read before it has been applied
  bool rx_aborted = false;  // the stream parser stopped for good: reads give EAGAIN
  int rx_err = 0;           // a socket error due (recv or SO_ERROR reports it once)

  // Appends a message to ingress_msg; -ENOMEM (and nothing queued) when memory
  // is short.
  int ingress_enqueue(SkMsgBytes msg) noexcept;
  size_t ingress_queued() noexcept;

 private:
  friend Psock* psock_init(Socket* sk) noexcept;
  friend bool psock_try_get(Psock* p) noexcept;
  friend void psock_put(Psock* p) noexcept;
  friend class PsockPool;
  void drop() noexcept;

  Psock* next_free_ = nullptr;
};

// Creates sk's psock with one reference and publishes it in sk->psock
// (sk_psock_init); null, with nothing published, when memory is short. The
// caller holds sk->lock() and sk has no psock.
Psock* psock_init(Socket* sk) noexcept;

// A reference on p unless it is already being dropped (refcount_inc_not_zero).
bool psock_try_get(Psock* p) noexcept;

// Drops a reference; the last one unpublishes the psock, stops it, discards its
// queued and corked bytes and recycles it (sk_psock_put -> sk_psock_drop).
void psock_put(Psock* p) noexcept;

// A counted reference that puts itself.
class PsockRef {
 public:
  PsockRef() = default;
  explicit PsockRef(Psock* p) noexcept : p_(p) {}  // adopts a reference
  PsockRef(PsockRef&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  PsockRef& operator=(PsockRef&& o) noexcept {
    if (this != &o) {
      reset();
      p_ = o.p_;
      o.p_ = nullptr;
    }
    return *this;
  }
  PsockRef(const PsockRef&) = delete;
  PsockRef& operator=(const PsockRef&) = delete;
  ~PsockRef() { reset(); }
  void reset() noexcept {
    if (p_) psock_put(p_);
    p_ = nullptr;
  }
  Psock* get() const noexcept { return p_; }
  Psock* operator->() const noexcept { return p_; }
  explicit operator bool() const noexcept { return p_ != nullptr; }

 private:
  Psock* p_ = nullptr;
};

// sk's psock with a temporary reference, or empty (sk_psock_get). Lock-free:
// psocks are type-stable (recycled, never freed), like socket records.
PsockRef psock_get(Socket* sk) noexcept;

// Live psocks, for tests and dump.
uint64_t psock_count() noexcept;

// In a fork child: frees every psock lock and the pool's, which threads that
// do not exist there may have held.
void psock_after_fork_child() noexcept;

}  // namespace sockshim
