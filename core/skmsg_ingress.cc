#include "core/skmsg_ingress.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>

#include "core/loaded_policy.h"
#include "core/psock_ext.h"
#include "core/real.h"
#include "core/registry.h"
#include "core/sk_msg_ring.h"
#include "core/tcp_bpf.h"
#include "policy/compiled.h"

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

size_t queue_limit(Psock* target, PsockExt& e) noexcept {
  int limit = e.rcvbuf.load(std::memory_order_relaxed);
  if (limit > 0) return static_cast<size_t>(limit);
  limit = kDefaultRcvbuf;
  int fd = socket_fd(target->sk());
  socklen_t len = sizeof limit;
  if (fd >= 0) {
    int saved = errno;
    if (real::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &limit, &len) != 0 || limit <= 0)
      limit = kDefaultRcvbuf;
    errno = saved;
  }
  // Unsized (still the default): as large as autotuning would let it grow.
  if (tcp_bpf_socket(*target->sk()) && limit == tcp_rmem().def) limit = tcp_rmem().max;
  e.rcvbuf.store(limit, std::memory_order_relaxed);
  return static_cast<size_t>(limit);
}

// The target left every map: its psock is going and its queue with it.
bool stopping(Psock* p) noexcept {
  std::lock_guard g(p->link_lock);
  return p->links.empty();
}

void signal_event(int efd) noexcept {
  uint64_t one = 1;
  int saved = errno;
  [[maybe_unused]] ssize_t r = real::write(efd, &one, sizeof one);
  errno = saved;
}

void drain_event(int efd) noexcept {
  uint64_t v;
  int saved = errno;
  [[maybe_unused]] ssize_t r = real::read(efd, &v, sizeof v);
  errno = saved;
}

void wake_senders(PsockExt& e) noexcept {
  std::lock_guard g(e.space_lock);
  if (e.space_waiters) e.space.notify_all();
}

}  // namespace

bool fd_nonblocking(int fd) noexcept {
  int saved = errno;
  int fl = real::fcntl(fd, F_GETFL, 0);
  errno = saved;
  return fl >= 0 && (fl & O_NONBLOCK);
}

int bpf_tcp_ingress(Psock* target, policy::SkMsg& msg, uint32_t bytes, bool nonblock,
                    int sender_fd) noexcept {
  PsockExt& e = psock_ext(target);
  const size_t limit = queue_limit(target, e);
  g_ingress_used.store(true, std::memory_order_relaxed);
  while (bytes > 0) {
    if (stopping(target)) {
      sk_msg_consume_front(msg, bytes);
      return 0;
    }
    size_t room;
    {
      std::lock_guard g(target->ingress_lock);
      room = target->ingress_bytes < limit ? limit - target->ingress_bytes : 0;
    }
    if (room > 0) {
      uint32_t n = static_cast<uint32_t>(std::min<size_t>(room, bytes));
      SkMsgBytes chunk;
      try {
        chunk = sk_msg_take_front(msg, n);
      } catch (...) {
        return -ENOMEM;
      }
      {
        std::lock_guard g(target->ingress_lock);
        bool was_empty = target->ingress_bytes == 0;
        target->ingress_bytes += n;
        target->ingress_msg.push_back(std::move(chunk));
        if (was_empty && e.event_fd >= 0) signal_event(e.event_fd);
      }
      e.stats.ingress_in.fetch_add(n, std::memory_order_relaxed);
      bytes -= n;
      continue;
    }
    // The shim's O_NONBLOCK record can miss a change made behind its back: ask.
    if (nonblock || (sender_fd >= 0 && fd_nonblocking(sender_fd))) return -EAGAIN;
    std::unique_lock g(e.space_lock);
    ++e.space_waiters;
    bool full;
    {
      std::lock_guard q(target->ingress_lock);
      full = target->ingress_bytes >= limit;
    }
    // The timeout bounds a wait on a target that stops while we sleep.
    if (full) e.space.wait_for(g, std::chrono::milliseconds(20));
    --e.space_waiters;
  }
  return 0;
}

size_t sk_msg_recvmsg(Psock* p, const iovec* iov, size_t iovcnt, int flags) noexcept {
  const bool peek = flags & MSG_PEEK;
  size_t copied = 0;
  PsockExt* e = nullptr;
  {
    std::lock_guard g(p->ingress_lock);
    auto it = p->ingress_msg.begin();
    size_t off = 0;  // into *it
    for (size_t i = 0; i < iovcnt && it != p->ingress_msg.end(); ++i) {
      auto* dst = static_cast<uint8_t*>(iov[i].iov_base);
      size_t room = iov[i].iov_len;
      while (room > 0 && it != p->ingress_msg.end()) {
        size_t n = std::min(room, it->size() - off);
        memcpy(dst, it->data() + off, n);
        dst += n;
        room -= n;
        off += n;
        copied += n;
        if (off == it->size()) {
          it = peek ? std::next(it) : p->ingress_msg.erase(it);
          off = 0;
        }
      }
    }
    if (!peek && copied > 0) {
      if (off > 0) it->erase(it->begin(), it->begin() + static_cast<ptrdiff_t>(off));
      p->ingress_bytes -= copied;
    }
  }
  if (!peek && copied > 0) {
    e = &psock_ext(p);
    {
      std::lock_guard g(p->ingress_lock);
      if (p->ingress_bytes == 0 && e->event_fd >= 0) drain_event(e->event_fd);
    }
    wake_senders(*e);
  }
  return copied;
}

size_t sk_psock_msg_inq(Psock* p) noexcept {
  std::lock_guard g(p->ingress_lock);
  return p->ingress_bytes;
}

bool sk_psock_readable(Psock* p) noexcept {
  return sk_psock_msg_inq(p) > 0;
}

short sk_psock_poll(Psock* p) noexcept {
  return sk_psock_readable(p) ? POLLIN | POLLRDNORM : 0;
}

int psock_fionread(int fd) noexcept {
  SocketRef s = registry::get(fd);
  PsockRef p = s ? psock_get(s.get()) : PsockRef();
  return p ? static_cast<int>(sk_psock_msg_inq(p.get())) : 0;
}

int ingress_event_fd(Psock* p) noexcept {
  PsockExt& e = psock_ext(p);
  std::lock_guard g(p->ingress_lock);
  if (e.event_fd < 0) {
    int saved = errno;
    e.event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    errno = saved;
    if (e.event_fd >= 0 && p->ingress_bytes > 0) signal_event(e.event_fd);
  }
  return e.event_fd;
}

namespace {

// SO_RCVTIMEO in milliseconds, -1 for none.
int recv_timeout_ms(int fd) noexcept {
  timeval tv{};
  socklen_t len = sizeof tv;
  int saved = errno;
  int r = real::getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len);
  errno = saved;
  if (r != 0 || (tv.tv_sec == 0 && tv.tv_usec == 0)) return -1;
  return static_cast<int>(tv.tv_sec * 1000 + (tv.tv_usec + 999) / 1000);
}

// Whether any program of the loaded policy can queue bytes for a reader: an
// ingress redirect (sk_msg), or a receive-side verdict (which passes into the
// queue). Without one, an empty queue stays empty and a blocking read can wait
// in the kernel alone. Cached per loaded policy.
bool policy_may_queue() noexcept {
  static std::atomic<const LoadedPolicy*> cached{nullptr};
  static std::atomic<bool> cached_answer{true};
  std::shared_ptr<const LoadedPolicy> lp = current_policy();
  if (!lp) return g_ingress_used.load(std::memory_order_relaxed);
  if (cached.load(std::memory_order_acquire) == lp.get())
    return cached_answer.load(std::memory_order_relaxed);
  bool may = false;
  for (const auto& prog : lp->policy->programs) {
    if (prog->type() != policy::ProgramType::sk_msg && prog->is_verdict()) may = true;
    for (const policy::Rule& rule : prog->compiled().rules)
      for (const policy::Action& a : rule.actions)
        if (a.kind == policy::Action::Kind::redirect && (a.flags & policy::BPF_F_INGRESS))
          may = true;
  }
  may = may || g_ingress_used.load(std::memory_order_relaxed);
  cached_answer.store(may, std::memory_order_relaxed);
  cached.store(lp.get(), std::memory_order_release);
  return may;
}

}  // namespace

ssize_t tcp_bpf_recvmsg(int fd, Psock* p, msghdr* msg, int flags, bool nonblock) noexcept {
  nonblock = nonblock || (flags & MSG_DONTWAIT);
  size_t want = 0;
  for (size_t i = 0; i < msg->msg_iovlen; ++i) want += msg->msg_iov[i].iov_len;
  if (!nonblock && !policy_may_queue() && sk_psock_msg_inq(p) == 0)
    return real::recvmsg(fd, msg, flags);
  for (;;) {
    if (want > 0) {
      size_t n = sk_msg_recvmsg(p, msg->msg_iov, msg->msg_iovlen, flags);
      if (n > 0) {
        msg->msg_namelen = 0;
        msg->msg_controllen = 0;
        msg->msg_flags = 0;
        return static_cast<ssize_t>(n);
      }
    }
    ssize_t r = real::recvmsg(fd, msg, flags | MSG_DONTWAIT);
    if (r >= 0 || errno != EAGAIN || nonblock) return r;
    // The shim's O_NONBLOCK record can miss a change made behind its back: ask.
    if (fd_nonblocking(fd)) {
      errno = EAGAIN;
      return -1;
    }
    int efd = ingress_event_fd(p);
    pollfd pf[2] = {{fd, POLLIN, 0}, {efd, POLLIN, 0}};
    int pr = real::poll(pf, efd >= 0 ? 2 : 1, recv_timeout_ms(fd));
    if (pr < 0) return -1;
    if (pr == 0) {
      errno = EAGAIN;
      return -1;
    }
  }
}

}  // namespace sockshim
