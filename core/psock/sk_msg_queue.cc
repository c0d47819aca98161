#include "core/psock/sk_msg_queue.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <mutex>
#include <new>

#include "core/sock/errno_saver.h"
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
  std::lock_guard g(p->ingress_lock);
  if (p->event_fd < 0) {
    ErrnoSaver saved;
    p->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    p->event_ready = false;
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

}  // namespace sockshim
