#include "core/psock/sk_msg_queue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <mutex>
#include <new>

#include "core/domain/domain.h"
#include "core/sock/errno_saver.h"
#include "core/sock/event_loop.h"
#include "core/sock/fork_reset.h"
#include "core/sock/real.h"
#include "core/sock/registry.h"
#include "core/sock/sock_query.h"

namespace sockshim {
namespace {

// Default when the target has no fd here to ask: the kernel's default tcp_rmem.
constexpr int kDefaultRcvbuf = 131072;

// net.ipv4.tcp_rmem: {min, default, max}. A TCP receive buffer the program
// never sized grows (autotuning) up to max, so that is what the kernel would
// hold for it; the queue's limit follows, or a program streaming a few MB
// through a redirect and reading only afterwards would stall here and not
// there.
struct TcpRmem {
  int def = kDefaultRcvbuf;
  int max = 6 << 20;
};
const TcpRmem& tcp_rmem() noexcept {
  static const TcpRmem r = [] {
    TcpRmem t;
    if (FILE* f = fopen("/proc/sys/net/ipv4/tcp_rmem", "re")) {
      int lo;
      if (fscanf(f, "%d %d %d", &lo, &t.def, &t.max) != 3) t = TcpRmem{};
      fclose(f);
    }
    return t;
  }();
  return r;
}

size_t queue_room(Psock* p, size_t limit) noexcept {
  std::lock_guard g(p->ingress_lock);
  return p->ingress_bytes < limit ? limit - p->ingress_bytes : 0;
}

}  // namespace

std::atomic<bool> g_ingress_used{false};

void eventfd_signal(int efd) noexcept {
  uint64_t one = 1;
  ErrnoSaver saved;
  [[maybe_unused]] ssize_t r = real::write(efd, &one, sizeof one);
}

void eventfd_drain(int efd) noexcept {
  uint64_t v;
  ErrnoSaver saved;
  [[maybe_unused]] ssize_t r = real::read(efd, &v, sizeof v);
}

bool fd_nonblocking(int fd) noexcept {
  ErrnoSaver saved;
  int fl = real::fcntl(fd, F_GETFL, 0);
  return fl >= 0 && (fl & O_NONBLOCK);
}

size_t sk_psock_queue_limit(Psock* target) noexcept {
  int limit = target->rcvbuf.load(std::memory_order_relaxed);
  if (limit > 0) return static_cast<size_t>(limit);
  limit = kDefaultRcvbuf;
  int fd = socket_fd(target->sk());
  socklen_t len = sizeof limit;
  if (fd >= 0) {
    ErrnoSaver saved;
    if (real::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &limit, &len) != 0 || limit <= 0)
      limit = kDefaultRcvbuf;
  }
  // Unsized (still the default): as large as autotuning would let it grow.
  if (sock_kind(*target->sk()) == SockKind::tcp && limit == tcp_rmem().def) limit = tcp_rmem().max;
  target->rcvbuf.store(limit, std::memory_order_relaxed);
  return static_cast<size_t>(limit);
}

bool sk_psock_stopping(Psock* p) noexcept {
  std::lock_guard g(p->link_lock);
  return p->links.empty();
}

bool sk_psock_readable_locked(Psock* p) noexcept {
  if (domain::SockRing* r = sk_psock_ring_attached(p); r && r->ring().readable()) return true;
  return !p->ingress_msg.empty() || (p->engine_reads && (p->rx_eof || p->rx_aborted || p->rx_err));
}

void sk_psock_sync_event_locked(Psock* p) noexcept {
  if (p->event_fd < 0) return;
  bool ready = sk_psock_readable_locked(p);
  if (ready == p->event_ready) return;
  if (ready)
    eventfd_signal(p->event_fd);
  else
    eventfd_drain(p->event_fd);
  p->event_ready = ready;
}

int sk_psock_space_fd(Psock* p) noexcept {
  std::lock_guard g(p->ingress_lock);
  if (p->space_fd < 0) {
    ErrnoSaver saved;
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd >= 0) p->space_fd = registry::make_internal(fd);
  }
  return p->space_fd;
}

size_t sk_psock_msg_room(Psock* p, size_t limit, size_t bytes) noexcept {
  if (domain::SockRing* r = sk_psock_ring(p)) return sk_psock_ring_room(r);
  size_t room = queue_room(p, limit);
  if (!p->sk_dgram() || room >= bytes) return room;
  std::lock_guard g(p->ingress_lock);
  return p->ingress_bytes == 0 ? bytes : 0;
}

int sk_msg_node_init(SkMsgNode* node, SkMsgBytes bytes, std::unique_ptr<SockAddr> name) noexcept {
  try {
    node->push_back({std::move(bytes), std::move(name)});
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  return 0;
}

void sk_psock_queue_msg(Psock* p, SkMsgNode&& node) noexcept {
  PSOCK_WARN_ON(node.size() != 1);
  size_t n = node.front().bytes.size();
  g_ingress_used.store(true, std::memory_order_relaxed);
  {
    std::lock_guard g(p->ingress_lock);
    p->ingress_bytes += n;
    p->ingress_msg.splice(p->ingress_msg.end(), node);
    // An arrival onto unread bytes is a new edge too (EPOLLET), as in the
    // kernel: write the eventfd again.
    if (p->event_ready && p->event_fd >= 0)
      eventfd_signal(p->event_fd);
    else
      sk_psock_sync_event_locked(p);
  }
  p->stats.ingress_in.fetch_add(n, std::memory_order_relaxed);
}

int sk_psock_queue_bytes(Psock* p, SkMsgBytes bytes) noexcept {
  SkMsgNode node;
  if (int r = sk_msg_node_init(&node, std::move(bytes))) return r;
  sk_psock_queue_msg(p, std::move(node));
  return 0;
}

size_t sk_psock_ingress_push(Psock* target, std::span<const uint8_t> bytes,
                             const SockAddr* name) noexcept {
  if (bytes.empty()) return 0;
  g_ingress_used.store(true, std::memory_order_relaxed);
  if (domain::SockRing* r = sk_psock_ring(target)) return sk_psock_ring_push(target, r, bytes);
  size_t n =
      std::min(sk_psock_msg_room(target, sk_psock_queue_limit(target), bytes.size()), bytes.size());
  if (n == 0) return 0;
  SkMsgNode node;
  try {
    std::unique_ptr<SockAddr> src;
    if (name && name->len > 0) src = std::make_unique<SockAddr>(*name);
    if (sk_msg_node_init(&node,
                         SkMsgBytes(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(n)),
                         std::move(src)))
      return 0;
  } catch (...) {
    return 0;
  }
  sk_psock_queue_msg(target, std::move(node));
  return n;
}

int sk_psock_ingress_push_empty(Psock* target, const SockAddr* name) noexcept {
  g_ingress_used.store(true, std::memory_order_relaxed);
  const size_t limit = sk_psock_queue_limit(target);
  {
    std::lock_guard g(target->ingress_lock);
    const size_t charge =
        target->ingress_bytes + kSkMsgEmptyCharge * (target->ingress_msg.size() + 1);
    if (!target->ingress_msg.empty() && charge > limit) return -EAGAIN;
  }
  SkMsgNode node;
  try {
    std::unique_ptr<SockAddr> src;
    if (name && name->len > 0) src = std::make_unique<SockAddr>(*name);
    if (sk_msg_node_init(&node, SkMsgBytes(), std::move(src))) return -ENOMEM;
  } catch (...) {
    return -ENOMEM;
  }
  sk_psock_queue_msg(target, std::move(node));
  return 0;
}

void sk_psock_space_signal(Psock* p) noexcept {
  if (p->space_waiters.load(std::memory_order_acquire) == 0) return;
  int fd;
  {
    std::lock_guard g(p->ingress_lock);
    fd = p->space_fd;
  }
  if (fd >= 0) eventfd_signal(fd);
}

void sk_psock_rx_reading(Psock* p, bool on) noexcept {
  std::shared_ptr<RxStopFd> stop;
  {
    std::lock_guard g(p->ingress_lock);
    if (!on && p->engine_reads && p->rx_stop_fd) {
      // Never drained: a waiter that sees it late still wakes.
      eventfd_signal(p->rx_stop_fd->fd);
      stop.swap(p->rx_stop_fd);
    }
    p->engine_reads = on;
    p->rx_eof = p->rx_aborted = false;
    sk_psock_sync_event_locked(p);
  }
  // Closed here, outside the lock, unless a waiter still holds it.
}

bool sk_psock_rx_stop_wait(Psock* p, std::shared_ptr<RxStopFd>* out) noexcept {
  std::shared_ptr<RxStopFd> made;
  for (;;) {
    {
      std::lock_guard g(p->ingress_lock);
      if (!p->engine_reads) return false;
      if (!p->rx_stop_fd && made) p->rx_stop_fd = std::move(made);
      if (p->rx_stop_fd) {
        *out = p->rx_stop_fd;
        return true;
      }
    }
    // Made outside the spinlock; one that lost a race is closed.
    ErrnoSaver saved;
    try {
      made = std::make_shared<RxStopFd>();
    } catch (...) {
      return true;
    }
    made->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (made->fd < 0) return true;
  }
}

void sk_psock_rx_report(Psock* p, bool eof, int err, bool aborted) noexcept {
  std::lock_guard g(p->ingress_lock);
  p->rx_eof = p->rx_eof || eof;
  p->rx_aborted = p->rx_aborted || aborted;
  if (err) p->rx_err = err;
  sk_psock_sync_event_locked(p);
}

SkMsgClaim::~SkMsgClaim() {
  if (fd >= 0) registry::close_internal(fd);
}

void sk_psock_ingress_discard(Psock* p) noexcept {
  std::lock_guard g(p->ingress_lock);
  for (auto it = p->ingress_msg.begin(); it != p->ingress_msg.end();) {
    if (it->claim.fd >= 0) {
      ++it;
      continue;
    }
    p->ingress_bytes -= it->bytes.size();
    it = p->ingress_msg.erase(it);
  }
  sk_psock_sync_event_locked(p);
}

void sk_msg_fork_claims(Psock* p) noexcept {
  if (!p->sk_dgram()) return;
  ErrnoSaver saved;
  std::lock_guard g(p->ingress_lock);
  for (SkMsgIngress& m : p->ingress_msg) {
    if (m.claim.fd >= 0) continue;
    int fd = eventfd(1, EFD_NONBLOCK | EFD_CLOEXEC);
    // Without one the parent keeps it, as it keeps a stream's bytes.
    if (fd >= 0) m.claim.fd = registry::make_internal(fd);
  }
}

int ingress_event_fd(Psock* p) noexcept {
  if (domain::SockRing* r = sk_psock_ring(p)) sk_psock_ring_arm(p, r);
  std::lock_guard g(p->ingress_lock);
  if (p->event_fd < 0) {
    ErrnoSaver saved;
    p->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->event_ready = false;
    if (domain::SockRing* r = sk_psock_ring_attached(p))
      p->ring_seen_in = r->ring().counters().bytes_in;
    sk_psock_sync_event_locked(p);
  }
  return p->event_fd;
}

void sk_msg_queue_before_fork() noexcept {
  if (!g_ingress_used.load(std::memory_order_relaxed)) return;
  // Referenced under the pool's lock, claimed after it: a last put takes it.
  std::vector<PsockRef> live;
  psock_datagram_psocks(&live);
  for (const PsockRef& p : live) sk_msg_fork_claims(p.get());
}

namespace {

// The psocks of this process with a ring, named by generation (a recycled
// psock is not the one listed): the bell brings each up to date.
std::mutex g_ring_psocks_lock;
std::vector<RxWaiter> g_ring_psocks;
std::mutex g_ring_attach_lock;  // one attach per psock: a pid watches a ring once
std::atomic<pid_t> g_bell_watched{0};

void ring_sync(Psock* p, domain::SockRing* r) noexcept;

// The loop thread: the bell rang. Every ring psock here is looked at again.
void on_bell(int fd) noexcept {
  domain::drain_bell(fd);
  std::vector<PsockRef> live;
  {
    std::lock_guard g(g_ring_psocks_lock);
    for (auto it = g_ring_psocks.begin(); it != g_ring_psocks.end();) {
      Psock* p = it->psock;
      bool same = psock_try_get(p);
      PsockRef ref(same ? p : nullptr);
      if (!same || p->generation.load(std::memory_order_acquire) != it->generation ||
          !sk_psock_ring_attached(p)) {
        it = g_ring_psocks.erase(it);
        continue;
      }
      try {
        live.push_back(std::move(ref));
      } catch (...) {
      }
      ++it;
    }
  }
  for (const PsockRef& p : live)
    if (domain::SockRing* r = sk_psock_ring_attached(p.get())) ring_sync(p.get(), r);
}

// Watches this process's bell on its loop thread (again in a fork child).
void watch_bell() noexcept {
  const pid_t me = domain::own_holder().pid;
  if (g_bell_watched.load(std::memory_order_acquire) == me) return;
  std::lock_guard g(g_ring_attach_lock);
  if (g_bell_watched.load(std::memory_order_relaxed) == me) return;
  int fd = domain::own_ring_bell();
  EventLoop* loop = fd >= 0 ? EventLoop::get() : nullptr;
  if (!loop) return;
  if (loop->watch(fd, EPOLLIN, [fd](uint32_t) { on_bell(fd); }))
    g_bell_watched.store(me, std::memory_order_release);
}

// What the bell says for p: its eventfd follows the ring (a new arrival is
// a new edge), blocked senders and waiting sources look for room again, and
// the ring is armed for the next change.
void ring_sync(Psock* p, domain::SockRing* r) noexcept {
  sk_psock_ring_arm(p, r);
  {
    std::lock_guard g(p->ingress_lock);
    if (p->event_fd >= 0) {
      const uint32_t in = r->ring().counters().bytes_in;
      bool ready = sk_psock_readable_locked(p);
      if (ready && (!p->event_ready || in != p->ring_seen_in))
        eventfd_signal(p->event_fd);
      else if (!ready && p->event_ready)
        eventfd_drain(p->event_fd);
      p->event_ready = ready;
      p->ring_seen_in = in;
    }
  }
  sk_psock_space_signal(p);
  if (p->has_waiters.load(std::memory_order_acquire))
    if (auto* wake = psock_ops().rx_wake) wake(p);
}

}  // namespace

domain::SockRing* sk_psock_ring(Psock* p) noexcept {
  if (domain::SockRing* r = p->ring.load(std::memory_order_acquire)) return r;
  if (p->ring_none.load(std::memory_order_acquire)) return nullptr;
  Socket* sk = p->sk();
  domain::Domain* d = domain::own_domain();
  if (!d || d->failed() || !sk || sk->cookie == 0 || sock_kind(*sk) != SockKind::tcp) {
    p->ring_none.store(true, std::memory_order_release);
    return nullptr;
  }
  const size_t limit = sk_psock_queue_limit(p);
  // Named in a ring made here, for its TCP peer to tell it its count. Asked
  // of the kernel: callers may hold the socket's lock.
  SockAddr local, remote;
  if (int fd = socket_fd(sk); fd >= 0) kernel_addresses(fd, &local, &remote);
  domain::SockRing* r = nullptr;
  {
    std::lock_guard g(g_ring_attach_lock);
    if ((r = p->ring.load(std::memory_order_acquire))) return r;
    int err = 0;
    r = domain::SockRing::attach(*d, sk->cookie,
                                 static_cast<uint32_t>(std::min<size_t>(limit, UINT32_MAX)), &err,
                                 &local, &remote);
    if (!r) {
      p->ring_none.store(true, std::memory_order_release);
      return nullptr;
    }
    // Bytes queued here before (none unless the domain came late) stay
    // first: the local list is read before the ring.
    p->ring.store(r, std::memory_order_release);
  }
  try {
    std::lock_guard g(g_ring_psocks_lock);
    g_ring_psocks.push_back({p, p->generation.load(std::memory_order_acquire)});
  } catch (...) {
  }
  g_ingress_used.store(true, std::memory_order_relaxed);
  return r;
}

void sk_psock_rings_after_fork_child() noexcept {
  fork_reset_if_held(g_ring_psocks_lock);
  fork_reset_if_held(g_ring_attach_lock);
  domain::SockRing::after_fork_child();
}

size_t sk_psock_ring_room(domain::SockRing* r) noexcept {
  uint64_t room = r->ring().room();
  return room > sizeof(domain::RingRecord) ? room - sizeof(domain::RingRecord) : 0;
}

size_t sk_psock_ring_push(Psock* p, domain::SockRing* r, std::span<const uint8_t> bytes) noexcept {
  if (bytes.empty()) return 0;
  ssize_t n = r->ring().append(bytes);
  if (n <= 0) return 0;
  p->stats.ingress_in.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
  const uint32_t in = r->ring().counters().bytes_in;
  std::lock_guard g(p->ingress_lock);
  // An arrival onto unread bytes is a new edge too (EPOLLET), once: the bell
  // may have told it already.
  if (p->event_fd >= 0 && in != p->ring_seen_in) {
    eventfd_signal(p->event_fd);
    p->event_ready = true;
    p->ring_seen_in = in;
  }
  return static_cast<size_t>(n);
}

void sk_psock_ring_arm(Psock* p, domain::SockRing* r) noexcept {
  watch_bell();
  uint32_t want = domain::kNotifyData | domain::kNotifyEmpty;
  if (p->space_waiters.load(std::memory_order_acquire) ||
      p->has_waiters.load(std::memory_order_acquire))
    want |= domain::kNotifySpace;
  r->ring().arm_notify(want);
}

}  // namespace sockshim
