#include "core/psock/psock.h"

#include <errno.h>
#include <sched.h>

#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "core/psock/psock_ext.h"
#include "core/rx/sk_psock_rx.h"
#include "core/sock/socket.h"

namespace sockshim {

// Psocks are allocated in chunks and recycled through a free list, never
// freed: a reader that loaded sk->psock just before the drop still reads a
// Psock (its refcount), as with SocketPool.
class PsockPool {
 public:
  static Psock* allocate() noexcept {
    State& s = state();
    std::lock_guard g(s.lock);
    if (!s.free) {
      auto* chunk = new (std::nothrow) Psock[kChunk];
      if (!chunk) return nullptr;
      try {
        s.chunks.push_back(chunk);
      } catch (const std::bad_alloc&) {
        delete[] chunk;
        return nullptr;
      }
      for (size_t i = 0; i < kChunk; ++i) {
        chunk[i].next_free_ = s.free;
        s.free = &chunk[i];
      }
    }
    Psock* p = s.free;
    s.free = p->next_free_;
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
  static void after_fork_child() noexcept {
    State& s = state();
    new (&s.lock) std::mutex();
    for (Psock* chunk : s.chunks)
      for (size_t i = 0; i < kChunk; ++i) {
        chunk[i].link_lock.reset();
        chunk[i].ingress_lock.reset();
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
    std::vector<Psock*> chunks;
    Psock* free = nullptr;
    uint64_t live = 0;
  };
  // Leaked on purpose: hooks may drop psocks while the process exits.
  static State& state() noexcept {
    static State* s = new State;
    return *s;
  }
};

int Psock::ingress_enqueue(SkMsgBytes msg) noexcept {
  std::list<SkMsgIngress> node;
  try {
    node.push_back({std::move(msg), nullptr});
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  std::lock_guard g(ingress_lock);
  ingress_bytes += node.front().bytes.size();
  ingress_msg.splice(ingress_msg.end(), node);
  return 0;
}

size_t Psock::ingress_queued() noexcept {
  std::lock_guard g(ingress_lock);
  return ingress_bytes;
}

Psock* psock_init(Socket* sk) noexcept {
  Psock* p = PsockPool::allocate();
  if (!p) return nullptr;
  p->sk_ = sk;
  p->rx = PsockRx::none;
  p->rx_reads = p->rx_eof = p->rx_aborted = false;
  p->rx_err = 0;
  p->tx_enabled.store(true, std::memory_order_relaxed);
  p->generation.fetch_add(1, std::memory_order_relaxed);
  // Its side state exists before anyone can reach it, so finding it later
  // cannot fail.
  if (psock_ext_init(p) != 0) {
    p->sk_ = nullptr;
    PsockPool::release(p);
    return nullptr;
  }
  p->refcnt_.store(1, std::memory_order_relaxed);
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
  if (p->refcnt_.fetch_sub(1, std::memory_order_acq_rel) == 1) p->drop();
}

void Psock::drop() noexcept {
  // Unpublish first: an insertion waiting for this psock to go may then create
  // a fresh one.
  Psock* self = this;
  sk_->psock.compare_exchange_strong(self, nullptr, std::memory_order_acq_rel);
  tx_enabled.store(false, std::memory_order_relaxed);
  // The engine's fds and held bytes go; nobody else can reach it now.
  sk_psock_rx_drop(this);
  for (auto* prog :
       {&progs.msg_parser, &progs.stream_parser, &progs.stream_verdict, &progs.skb_verdict})
    prog->store(nullptr, std::memory_order_relaxed);
  {
    std::lock_guard g(link_lock);
    links.clear();
    rx = PsockRx::none;
  }
  {
    // sk_psock_stop + __sk_psock_zap_ingress: unread and corked bytes go.
    std::lock_guard g(ingress_lock);
    ingress_msg.clear();
    ingress_bytes = 0;
    rx_reads = rx_eof = rx_aborted = false;
    rx_err = 0;
    SkMsgBytes().swap(cork);
    cork_bytes = 0;
    apply_bytes = 0;
  }
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

uint64_t psock_count() noexcept {
  return PsockPool::live();
}

void psock_after_fork_child() noexcept {
  PsockPool::after_fork_child();
}

}  // namespace sockshim
