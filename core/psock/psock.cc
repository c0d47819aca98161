#include "core/psock/psock.h"

#include <errno.h>
#include <sched.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "core/domain/sock_ring.h"
#include "core/sock/fork_reset.h"
#include "core/sock/real.h"
#include "core/sock/registry.h"
#include "core/sock/socket.h"

namespace sockshim {

// Psocks are allocated in chunks and recycled through a free list, never
// freed: a reader that loaded sk->psock just before the drop still reads a
// Psock (its refcount), as with SocketPool. A chunk's psocks are constructed
// one by one as first handed out, so that the pages of those never used stay
// untouched: every page a process has written is one more page table entry
// each fork copies, and the fork child's handler visits only made psocks.
class PsockPool {
 public:
  static Psock* allocate() noexcept {
    State& s = state();
    std::lock_guard g(s.lock);
    Psock* p = s.free;
    if (p) {
      s.free = p->next_free_;
    } else {
      if (s.made == s.chunks.size() * kChunk) {
        void* raw =
            ::operator new (sizeof(Psock) * kChunk, std::align_val_t{alignof(Psock)}, std::nothrow);
        if (!raw) return nullptr;
        try {
          s.chunks.push_back(static_cast<unsigned char*>(raw));
        } catch (const std::bad_alloc&) {
          ::operator delete (raw, std::align_val_t{alignof(Psock)});
          return nullptr;
        }
      }
      p = new (s.chunks[s.made / kChunk] + (s.made % kChunk) * sizeof(Psock)) Psock;
      ++s.made;
    }
    ++s.live;
    return p;
  }
  static void release(Psock* p) noexcept {
    State& s = state();
    std::lock_guard g(s.lock);
    p->next_free_ = s.free;
    s.free = p;
    --s.live;
  }
  // Live psocks of datagram sockets with a reference each (before fork).
  static void datagram_psocks(std::vector<PsockRef>* out) noexcept {
    State& s = state();
    std::lock_guard g(s.lock);
    try {
      out->reserve(s.live);
    } catch (...) {
      return;  // the parents keep their datagrams, as they keep a stream's bytes
    }
    for (size_t i = 0; i < s.made && out->size() < s.live; ++i) {
      Psock* p = made(s, i);
      if (p->refcnt() && p->sk_dgram() && psock_try_get(p)) out->emplace_back(p);
    }
  }
  static void after_fork_child() noexcept {
    State& s = state();
    new (&s.lock) std::mutex();
    auto* fork_child_rx = psock_ops().fork_child_rx;
    for (size_t i = 0; i < s.made; ++i) {
      Psock& p = *made(s, i);
      p.link_lock.reset();
      p.ingress_lock.reset();
      // Only a held lock is written (core/sock/fork_reset.h).
      fork_reset_if_held(p.tx_lock);
      fork_reset_if_held(p.sk_fd_lock);
      fork_reset_if_held(p.waiters_lock);
      if (fork_child_rx) fork_child_rx(p.refcnt() > 0 ? &p : nullptr, p);
    }
  }
  static uint64_t live() noexcept {
    State& s = state();
    std::lock_guard g(s.lock);
    return s.live;
  }

 private:
  static constexpr size_t kChunk = 256;
  struct State {
    std::mutex lock;
    std::vector<unsigned char*> chunks;  // storage for kChunk psocks each
    size_t made = 0;                     // psocks constructed, in chunk order
    Psock* free = nullptr;
    uint64_t live = 0;
  };
  static Psock* made(State& s, size_t i) noexcept {
    return std::launder(
        reinterpret_cast<Psock*>(s.chunks[i / kChunk] + (i % kChunk) * sizeof(Psock)));
  }
  // Leaked on purpose: hooks may drop psocks while the process exits.
  static State& state() noexcept {
    static State* s = new State;
    return *s;
  }
};

PsockOps& psock_ops() noexcept {
  static constinit PsockOps ops;
  return ops;
}

RxStopFd::~RxStopFd() {
  if (fd >= 0) real::close(fd);
}

// A psock out of the pool: what its previous socket left goes (a drop has
// already freed the bytes). Nobody can reach it, so no lock is taken.
void Psock::reset() noexcept {
  PSOCK_WARN_ON(refcnt_.load(std::memory_order_relaxed) != 0);
  PSOCK_WARN_ON(!links.empty() || !ingress_msg.empty() || ingress_bytes != 0);
  PSOCK_WARN_ON(cork_alloc || rx_on.load(std::memory_order_relaxed) || sk_fd >= 0);
  sk_redir = nullptr;
  redir_cookie = 0;
  apply_bytes = cork_bytes = 0;
  eval = SkEval::none;
  redir_ingress = false;
  work_state.epoch = 0;
  rx_held.store(0, std::memory_order_relaxed);
  engine_reads = rx_eof = rx_aborted = false;
  rx_err = 0;
  if (event_fd >= 0) {
    if (auto* forget = psock_ops().poll_forget) forget(event_fd);
    real::close(event_fd);
  }
  event_fd = -1;
  event_ready = false;
  ring_seen_in = 0;
  rx_stop_fd.reset();
  rx_hook = RxHook::none;
  rx_predating.store(false, std::memory_order_relaxed);
  rx_draining.store(false, std::memory_order_relaxed);
  waiters.clear();
  has_waiters.store(false, std::memory_order_relaxed);
  rcvbuf.store(0, std::memory_order_relaxed);
  ring_none.store(false, std::memory_order_relaxed);
  ring_ordered.store(false, std::memory_order_relaxed);
  ring_tcp_told.store(false, std::memory_order_relaxed);
  fd_hint.store(-1, std::memory_order_relaxed);
  stats.reset();
  tx_enabled.store(true, std::memory_order_relaxed);
}

Psock* psock_init(Socket* sk) noexcept {
  Psock* p = PsockPool::allocate();
  if (!p) return nullptr;
  p->reset();
  p->sk_ = sk;
  p->sk_cookie_ = sk->cookie;
  p->sk_family_ = sk->family;
  p->sk_type_ = sk->type;
  p->generation.fetch_add(1, std::memory_order_relaxed);
  // Release: a stale callback that gets a reference sees the new generation.
  p->refcnt_.store(1, std::memory_order_release);
  sk->psock.store(p, std::memory_order_release);
  return p;
}

bool psock_try_get(Psock* p) noexcept {
  uint32_t r = p->refcnt_.load(std::memory_order_relaxed);
  while (r != 0)
    if (p->refcnt_.compare_exchange_weak(r, r + 1, std::memory_order_acquire,
                                         std::memory_order_relaxed))
      return true;
  return false;
}

void psock_put(Psock* p) noexcept {
  const uint32_t before = p->refcnt_.fetch_sub(1, std::memory_order_acq_rel);
  PSOCK_WARN_ON(before == 0);  // refcount_t's underflow warning
  if (before == 1) p->drop();
}

// __sk_psock_zap_ingress: every queued byte goes, and what the reader was due.
static void sk_psock_zap_ingress(Psock* p) noexcept {
  std::list<SkMsgIngress> gone;
  {
    std::lock_guard g(p->ingress_lock);
    gone.swap(p->ingress_msg);
    p->ingress_bytes = 0;
    p->engine_reads = p->rx_eof = p->rx_aborted = false;
    p->rx_err = 0;
  }
  // The shared ring stays with the socket's other holders.
  if (domain::SockRing* r = p->ring.exchange(nullptr, std::memory_order_acq_rel)) r->detach();
  // Freed (and claims closed) outside the spinlock.
}

void Psock::drop() noexcept {
  // Unpublish first: an insertion waiting for this psock to go may then create
  // a fresh one.
  Psock* self = this;
  sk_->psock.compare_exchange_strong(self, nullptr, std::memory_order_acq_rel);
  tx_enabled.store(false, std::memory_order_relaxed);
  // The engine's fds and held bytes go; nobody else can reach it now.
  if (auto* drop_rx = psock_ops().drop_rx) drop_rx(this);
  for (auto* prog :
       {&progs.msg_parser, &progs.stream_parser, &progs.stream_verdict, &progs.skb_verdict})
    prog->store(nullptr, std::memory_order_relaxed);
  {
    std::lock_guard g(link_lock);
    links.clear();
    rx_hook = RxHook::none;
  }
  // sk_psock_stop + __sk_psock_zap_ingress: unread and corked bytes go.
  sk_psock_zap_ingress(this);
  // No tx_lock: no reference is left, and a drop may run under another
  // psock's (a redirect target's last reference).
  sk_psock_cork_free(this);
  cork_bytes = apply_bytes = 0;
  sk_ = nullptr;
  PsockPool::release(this);
}

PsockRef psock_get(Socket* sk) noexcept {
  for (;;) {
    Psock* p = sk->psock.load(std::memory_order_acquire);
    if (!p) return {};
    if (psock_try_get(p)) {
      // p may have been recycled for another socket between the two loads.
      if (sk->psock.load(std::memory_order_acquire) == p) return PsockRef(p);
      psock_put(p);
    } else {
      // Being dropped: the drop unpublishes it next.
      if (sk->psock.load(std::memory_order_acquire) == p) sched_yield();
    }
  }
}

void sk_psock_cork_free(Psock* psock) noexcept {
  if (!psock->cork_alloc) return;
  const uint64_t n = psock->cork.size();
  psock->cork = policy::SkMsg();
  psock->cork_alloc = false;
  tx_commit(psock->stats.tx, {.dropped = n}, 0);
}

int socket_fd(Socket* sk) noexcept {
  Psock* p = sk->psock.load(std::memory_order_acquire);
  if (p) {
    int hint = p->fd_hint.load(std::memory_order_relaxed);
    if (hint >= 0 && registry::peek(hint) == sk) return hint;
  }
  int hi = registry::high_water();
  for (int fd = 0; fd <= hi; ++fd)
    if (registry::peek(fd) == sk) {
      if (p) p->fd_hint.store(fd, std::memory_order_relaxed);
      return fd;
    }
  return -1;
}

uint64_t psock_count() noexcept {
  return PsockPool::live();
}

void psock_datagram_psocks(std::vector<PsockRef>* out) noexcept {
  PsockPool::datagram_psocks(out);
}

std::atomic<uint64_t> g_psock_forks{0};

void psock_after_fork_child() noexcept {
  g_psock_forks.fetch_add(1, std::memory_order_relaxed);
  PsockPool::after_fork_child();
}

}  // namespace sockshim
