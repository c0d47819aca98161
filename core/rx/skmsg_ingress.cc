#include "core/rx/skmsg_ingress.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <time.h>
#include <atomic>
#include <cstring>
#include <list>
#include <mutex>
#include <vector>

#include "core/maps/loaded_policy.h"
#include "core/psock/sk_msg_queue.h"
#include "core/rx/sk_psock_rx.h"
#include "core/sock/blocked_waits.h"
#include "core/sock/errno_saver.h"
#include "core/sock/log.h"
#include "core/sock/real.h"
#include "core/sock/registry.h"
#include "core/sock/tcp_stream_bytes.h"
#include "policy/compiled.h"

namespace sockshim {

namespace {

// Whether this process may have the datagram claim c guards: one without a
// claim is its own; a peek leaves an untaken one for others; a read takes it
// (and the others will find it taken). An error other than EAGAIN (the
// program closed the fd) leaves it to this process.
bool claim(SkMsgClaim& c, bool peek) noexcept {
  if (c.fd < 0) return true;
  ErrnoSaver saved;
  bool mine;
  if (peek) {
    pollfd pf{c.fd, POLLIN, 0};
    mine = real::poll(&pf, 1, 0) != 0;
  } else {
    uint64_t v;
    mine = real::read(c.fd, &v, sizeof v) == sizeof v || errno != EAGAIN;
  }
  return mine;
}

// A reader consumed from p's queue: the readiness follows, and senders and
// sources waiting for room go on.
void consumed(Psock* p) noexcept {
  {
    std::lock_guard g(p->ingress_lock);
    sk_psock_sync_event_locked(p);
  }
  sk_psock_space_signal(p);
  if (p->has_waiters.load(std::memory_order_acquire)) sk_psock_rx_wake(p);
}

// Reads stream bytes from r into iov: how many (0 when it is empty, or its
// memory stopped adding up: the error is logged once).
size_t ring_recv(domain::SockRing* r, const iovec* iov, size_t iovcnt, int flags) noexcept {
  domain::RingRead out;
  int rc = r->ring().recv(iov, iovcnt, flags & MSG_PEEK, &out);
  if (rc == -EUCLEAN) {
    static std::atomic<bool> said{false};
    if (!said.exchange(true))
      log::error("the shared ingress ring of socket {} is corrupt: {}", r->cookie(),
                 r->ring().why());
  }
  return rc == 0 ? out.copied : 0;
}

// Copies the first queued datagram of p into msg (and takes it, unless
// MSG_PEEK); under p->ingress_lock, the queue not empty.
ssize_t copy_dgram_locked(Psock* p, msghdr* msg, int flags) noexcept {
  auto it = p->ingress_msg.begin();
  const size_t len = it->bytes.size();
  size_t off = 0;
  for (size_t i = 0; i < msg->msg_iovlen && off < len; ++i) {
    size_t n = std::min(msg->msg_iov[i].iov_len, len - off);
    memcpy(msg->msg_iov[i].iov_base, it->bytes.data() + off, n);
    off += n;
  }
  // The source, if it is an address of the reader's family (a datagram
  // redirected from another family has none for it); namelen is its full
  // length, as the kernel's move_addr_to_user gives it.
  const SockAddr* src = it->name.get();
  if (src && src->addr.ss_family != p->sk_family()) src = nullptr;
  if (msg->msg_name && src) {
    memcpy(msg->msg_name, &src->addr, std::min<size_t>(msg->msg_namelen, src->len));
    msg->msg_namelen = src->len;
  } else {
    msg->msg_namelen = 0;
  }
  msg->msg_controllen = 0;
  msg->msg_flags = off < len ? MSG_TRUNC : 0;
  if (!(flags & MSG_PEEK)) {
    p->ingress_bytes -= len;
    p->ingress_msg.erase(it);
  }
  return static_cast<ssize_t>(flags & MSG_TRUNC ? len : off);
}

}  // namespace

size_t sk_msg_recvmsg(Psock* p, const iovec* iov, size_t iovcnt, int flags,
                      bool with_ring) noexcept {
  const bool peek = flags & MSG_PEEK;
  size_t copied = 0;
  {
    std::lock_guard g(p->ingress_lock);
    auto it = p->ingress_msg.begin();
    size_t off = 0;  // into *it
    for (size_t i = 0; i < iovcnt && it != p->ingress_msg.end(); ++i) {
      auto* dst = static_cast<uint8_t*>(iov[i].iov_base);
      size_t room = iov[i].iov_len;
      while (room > 0 && it != p->ingress_msg.end()) {
        size_t n = std::min(room, it->bytes.size() - off);
        memcpy(dst, it->bytes.data() + off, n);
        dst += n;
        room -= n;
        off += n;
        copied += n;
        if (off == it->bytes.size()) {
          it = peek ? std::next(it) : p->ingress_msg.erase(it);
          off = 0;
        }
      }
    }
    if (!peek && copied > 0) {
      if (off > 0)
        it->bytes.erase(it->bytes.begin(), it->bytes.begin() + static_cast<ptrdiff_t>(off));
      p->ingress_bytes -= copied;
    }
  }
  // The shared ring after the local list (which holds bytes only from
  // before the ring was attached): whichever holder reads first takes them.
  if (copied == 0)
    if (domain::SockRing* r = sk_psock_ring(p); r && with_ring)
      copied = ring_recv(r, iov, iovcnt, flags);
  if (!peek && copied > 0) consumed(p);
  return copied;
}

ssize_t sk_msg_recv_dgram(Psock* p, msghdr* msg, int flags) noexcept {
  const bool peek = flags & MSG_PEEK;
  ssize_t ret = -1;
  bool lost = false;
  {
    std::lock_guard g(p->ingress_lock);
    // Datagrams another process of the fork took are dropped here.
    while (!p->ingress_msg.empty() && !claim(p->ingress_msg.front().claim, peek)) {
      p->ingress_bytes -= p->ingress_msg.front().bytes.size();
      p->ingress_msg.pop_front();
      lost = true;
    }
    if (!p->ingress_msg.empty()) ret = copy_dgram_locked(p, msg, flags);
  }
  if ((ret >= 0 && !peek) || lost) consumed(p);
  return ret;
}

bool sk_psock_readable(Psock* p) noexcept {
  sk_psock_rx_active(p, -1);
  std::lock_guard g(p->ingress_lock);
  return sk_psock_readable_locked(p);
}

short sk_psock_poll(Psock* p, bool reading) noexcept {
  if (reading) sk_psock_rx_active(p, -1);
  std::lock_guard g(p->ingress_lock);
  short ev = sk_psock_readable_locked(p) ? POLLIN | POLLRDNORM : 0;
  if (p->engine_reads) {
    if (p->rx_eof) ev |= POLLRDHUP;
    if (p->rx_err) ev |= POLLERR;
    if (p->rx_eof && p->rx_err) ev |= POLLHUP;  // reset
  }
  return ev;
}

void psock_fionread(int fd, int* value) noexcept {
  SocketRef s = registry::get(fd);
  PsockRef p = s ? psock_get(s.get()) : PsockRef();
  if (!p) return;
  // The engine reads the socket: what the kernel holds has not passed the
  // verdict yet and is not the reader's (tcp_bpf_ioctl counts the queue only).
  std::lock_guard g(p->ingress_lock);
  if (p->sk_dgram()) {
    // A datagram socket's FIONREAD is the size of the next datagram (the
    // queue's first; the kernel's own when the queue is empty and the socket
    // is not the engine's).
    if (!p->ingress_msg.empty())
      *value = static_cast<int>(p->ingress_msg.front().bytes.size());
    else if (p->engine_reads)
      *value = 0;
    return;
  }
  domain::SockRing* r = sk_psock_ring_attached(p.get());
  const size_t queued = p->ingress_bytes + (r ? r->ring().queued_bytes() : 0);
  if (p->engine_reads)
    *value = static_cast<int>(queued);
  else
    *value += static_cast<int>(queued);
}

void psock_so_error(int fd, void* value, socklen_t* len) noexcept {
  if (!value || !len || *len < sizeof(int) || *static_cast<int*>(value) != 0) return;
  SocketRef s = registry::get(fd);
  PsockRef p = s ? psock_get(s.get()) : PsockRef();
  if (!p) return;
  std::lock_guard g(p->ingress_lock);
  if (!p->rx_err) return;
  *static_cast<int*>(value) = p->rx_err;
  p->rx_err = 0;
  sk_psock_sync_event_locked(p.get());
}

namespace {

// SO_RCVTIMEO in milliseconds, -1 for none.
int recv_timeout_ms(int fd) noexcept {
  timeval tv{};
  socklen_t len = sizeof tv;
  ErrnoSaver saved;
  int r = real::getsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len);
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
  // Bytecode from a BPF object may redirect to ingress at any time.
  may = may || !lp->policy->objects.empty() || g_ingress_used.load(std::memory_order_relaxed);
  cached_answer.store(may, std::memory_order_relaxed);
  cached.store(lp.get(), std::memory_order_release);
  return may;
}

}  // namespace

namespace {

// The reader's iovecs past the first `skip` bytes (a MSG_WAITALL read that
// goes on after a short copy), `cap` bytes of them at most.
struct IovTail {
  std::vector<iovec> v;
  IovTail(const msghdr* msg, size_t skip, size_t cap = SIZE_MAX) {
    for (size_t i = 0; i < msg->msg_iovlen && cap > 0; ++i) {
      const iovec& io = msg->msg_iov[i];
      if (skip >= io.iov_len) {
        skip -= io.iov_len;
        continue;
      }
      const size_t n = std::min(io.iov_len - skip, cap);
      v.push_back({static_cast<char*>(io.iov_base) + skip, n});
      cap -= n;
      skip = 0;
    }
  }
};

// Bytes the socket's TCP peer sent by TCP before it first redirected into the
// socket's ring come before the ring's. The peer told the ring how many it
// had written: while the socket's readers have taken fewer, read the socket
// (the rest of them at most), waiting for them unless nonblock. A peer that
// told nothing (another process's socket whose addresses the ring does not
// know): until the socket's own queue is found empty. Returns the bytes read
// into msg past `copied`, 0 once nothing older than the ring is left
// (ring_ordered from then on), or -errno.
ssize_t tcp_before_ring(int fd, Psock* p, domain::SockRing& r, msghdr* msg, size_t copied,
                        int flags, bool nonblock) noexcept {
  uint64_t told = 0, taken = 0;
  const bool counted = r.tcp_written_before(&told);
  if (counted && (tcp_bytes_taken(fd, &taken) != 0 || taken >= told)) {
    p->ring_ordered.store(true, std::memory_order_relaxed);
    return 0;
  }
  IovTail tail(msg, copied, counted ? told - taken : SIZE_MAX);
  msghdr m = *msg;
  m.msg_iov = tail.v.data();
  m.msg_iovlen = tail.v.size();
  ErrnoSaver saved;
  const int wait = counted && !nonblock ? 0 : MSG_DONTWAIT;
  ssize_t k = real::recvmsg(fd, &m, (flags & ~MSG_WAITALL) | wait);
  if (k > 0) {
    msg->msg_namelen = m.msg_namelen;
    msg->msg_controllen = m.msg_controllen;
    msg->msg_flags = m.msg_flags;
    return k;
  }
  // Told bytes still to come: the wait's end (SO_RCVTIMEO, a signal) or the
  // socket's error is the reader's.
  if (counted && k < 0) return -errno;
  p->ring_ordered.store(true, std::memory_order_relaxed);
  return 0;
}

// What an engine-read psock's reader gets once its queue is empty: 0 (wait),
// 1 (EOF), -errno (the socket error, taken; or -EAGAIN after a parser error).
// With bytes already copied the error stays for the next read.
int rx_due(Psock* p, bool copied) noexcept {
  // EOF and errors come after every byte of the shared ring too.
  if (domain::SockRing* r = sk_psock_ring_attached(p); r && r->ring().readable()) return 0;
  std::lock_guard g(p->ingress_lock);
  if (!p->ingress_msg.empty()) return 0;
  if (p->rx_aborted) return -EAGAIN;
  if (p->rx_err && !copied) {
    int err = p->rx_err;
    p->rx_err = 0;
    sk_psock_sync_event_locked(p);
    return -err;
  }
  return p->rx_eof || p->rx_err ? 1 : 0;
}

int64_t now_ms() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

// The real recvmsg, -errno on failure.
ssize_t real_recvmsg(int fd, msghdr* msg, int flags) noexcept {
  ssize_t r = real::recvmsg(fd, msg, flags);
  return r < 0 ? -errno : r;
}

void clear_header(msghdr* msg) noexcept {
  msg->msg_namelen = 0;
  msg->msg_controllen = 0;
  msg->msg_flags = 0;
}

}  // namespace

ssize_t tcp_bpf_recvmsg(int fd, Psock* p, msghdr* msg, int flags, bool nonblock) noexcept {
  if (flags & MSG_ERRQUEUE) return real_recvmsg(fd, msg, flags);
  nonblock = nonblock || (flags & MSG_DONTWAIT);
  sk_psock_rx_active(p, fd);  // in a fork child, the engine starts here
  bool engine_reads = sk_psock_engine_reads(p);
  size_t want = 0;
  for (size_t i = 0; i < msg->msg_iovlen; ++i) want += msg->msg_iov[i].iov_len;
  if (!engine_reads && !nonblock && !policy_may_queue() && sk_psock_msg_inq(p) == 0)
    return real_recvmsg(fd, msg, flags);
  // A datagram socket reads one message per call, whole (§7), and ignores
  // MSG_WAITALL as udp_recvmsg does; a zero-length read still takes one.
  const bool dgram = p->sk_dgram();
  if (want == 0 && !dgram) return engine_reads ? 0 : real_recvmsg(fd, msg, flags);
  const bool peek = flags & MSG_PEEK;
  const bool waitall = (flags & MSG_WAITALL) && !peek && !dgram;
  size_t copied = 0;
  int64_t deadline = -1;  // SO_RCVTIMEO, asked on the first wait
  bool asked_timeout = false;
  for (;;) {
    // Until the socket's bytes older than its ring are read, the ring is
    // read only after tcp_before_ring says so. A ring not yet attached, or
    // empty with no count told when looked at, is not read this round: a
    // peer may tell its count and append right after the look.
    bool with_ring = true;
    if (!engine_reads && !dgram && !p->ring_ordered.load(std::memory_order_relaxed)) {
      domain::SockRing* r = sk_psock_ring_attached(p);
      uint64_t told = 0;
      // Readable first: a peer tells before its first append.
      if (r && (r->ring().readable() || r->tcp_written_before(&told))) {
        ssize_t k = tcp_before_ring(fd, p, *r, msg, copied, flags, nonblock);
        if (k < 0) return copied ? static_cast<ssize_t>(copied) : k;
        copied += static_cast<size_t>(k);
        if (k > 0 && (copied == want || !waitall)) return static_cast<ssize_t>(copied);
        if (k > 0) continue;
      } else {
        with_ring = false;
      }
    }
    if (dgram) {
      if (ssize_t n = sk_msg_recv_dgram(p, msg, flags); n >= 0) return n;
    } else {
      IovTail tail(msg, copied);
      const iovec* iov = copied ? tail.v.data() : msg->msg_iov;
      const size_t iovcnt = copied ? tail.v.size() : msg->msg_iovlen;
      copied += sk_msg_recvmsg(p, iov, iovcnt, flags, with_ring);
    }
    if (copied == want || (copied > 0 && !waitall)) {
      clear_header(msg);
      return static_cast<ssize_t>(copied);
    }
    // The first read runs the engine on bytes that predate its start and
    // looks again: what passed is there now, as if the socket had been in its
    // maps all along (the kernel's first read may give EAGAIN; not here).
    if (engine_reads && copied == 0 && sk_psock_rx_kick(p, true)) continue;
    if (engine_reads) {
      int due = rx_due(p, copied > 0);
      if (due != 0 || !sk_psock_engine_reads(p)) {
        if (copied > 0) {
          clear_header(msg);
          return static_cast<ssize_t>(copied);
        }
        if (due < 0) return due;
        if (due > 0) {
          // A datagram socket's shut receive side: 0 to a read that would
          // wait, EAGAIN to one that would not, as udp_recvmsg gives.
          if (dgram && (nonblock || fd_nonblocking(fd))) return -EAGAIN;
          clear_header(msg);
          return 0;
        }
        engine_reads = false;  // stopped meanwhile: the socket's own bytes are the reader's again
        continue;
      }
    } else {
      // The socket's own bytes, after the queue (order is not kept, as in the kernel).
      msghdr m = *msg;
      IovTail t2(msg, copied);
      if (copied) {
        m.msg_iov = t2.v.data();
        m.msg_iovlen = t2.v.size();
      }
      // Its EAGAIN is the shim's: a wait follows.
      ErrnoSaver saved;
      ssize_t r = real::recvmsg(fd, &m, (flags & ~MSG_WAITALL) | MSG_DONTWAIT);
      if (r > 0 || (r == 0 && dgram)) {  // an empty datagram is a datagram
        copied += static_cast<size_t>(r);
        if (copied == want || !waitall) {
          msg->msg_namelen = m.msg_namelen;
          msg->msg_controllen = m.msg_controllen;
          msg->msg_flags = m.msg_flags;
          return static_cast<ssize_t>(copied);
        }
        continue;
      }
      // EOF after every byte another process queued before the peer's FIN:
      // one appended after this read's look at the ring comes first.
      if (r == 0 && copied == 0 && sk_psock_msg_queued(p)) continue;
      if (r == 0 || errno != EAGAIN)
        return copied ? static_cast<ssize_t>(copied) : r < 0 ? -errno : r;
    }
    // The shim's O_NONBLOCK record can miss a change made behind its back: ask.
    if (nonblock || fd_nonblocking(fd)) return copied ? static_cast<ssize_t>(copied) : -EAGAIN;
    if (!asked_timeout) {
      asked_timeout = true;
      int t = recv_timeout_ms(fd);
      if (t >= 0) deadline = now_ms() + t;
    }
    int timeout = -1;
    if (deadline >= 0) timeout = static_cast<int>(std::max<int64_t>(0, deadline - now_ms()));
    int efd = ingress_event_fd(p);
    // With the engine only the queue's eventfd says anything to the reader,
    // and the stop eventfd that the socket is the reader's again.
    std::shared_ptr<RxStopFd> stop;
    if (engine_reads && !sk_psock_rx_stop_wait(p, &stop)) continue;
    pollfd pf[2];
    nfds_t n = 0;
    if (efd >= 0) pf[n++] = {efd, POLLIN, 0};
    if (!engine_reads)
      pf[n++] = {fd, POLLIN, 0};
    else if (stop)
      pf[n++] = {stop->fd, POLLIN, 0};
    if (n == 0) pf[n++] = {fd, POLLIN, 0};
    ErrnoSaver saved;
    int pr = blocked_wait(timeout != 0, [&] { return real::poll(pf, n, timeout); });
    if (pr <= 0) return copied ? static_cast<ssize_t>(copied) : pr == 0 ? -EAGAIN : -errno;
  }
}

}  // namespace sockshim
