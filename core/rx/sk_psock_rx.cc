#include "core/rx/sk_psock_rx.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "core/psock/sk_msg_queue.h"
#include "core/psock/strparser.h"
#include "core/rx/skb_verdict.h"
#include "core/sock/errno_saver.h"
#include "core/sock/event_loop.h"
#include "core/sock/log.h"
#include "core/sock/real.h"
#include "core/sock/registry.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

namespace sockshim {

namespace {

using policy::Verdict;

constexpr size_t kReadChunk = 65536;
// Reads per turn, so one busy socket does not starve the others; the rest is
// posted as a task.
constexpr int kReadBudget = 16;
constexpr uint32_t kRxEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
constexpr uint32_t kTargetEvents = EPOLLOUT | EPOLLET;

uint64_t generation(Psock* p) noexcept {
  return p->generation.load(std::memory_order_acquire);
}

void on_event(Psock* p, uint64_t gen, uint32_t events) noexcept;

void close_timer(SkPsockWorkState& st) noexcept {
  if (st.timer_fd < 0) return;
  if (EventLoop* loop = EventLoop::get()) loop->unwatch(st.timer_fd);
  registry::close_internal(st.timer_fd);
  st.timer_fd = -1;
  st.timer_armed = false;
}

// Closes p's engine fd; the caller holds e.sk_fd_lock.
void close_fd_locked(Psock& e) noexcept {
  if (e.sk_fd < 0) return;
  if (e.sk_fd_events)
    if (EventLoop* loop = EventLoop::get()) loop->unwatch(e.sk_fd);
  // A number the program closed behind us (a close-all loop) is not ours any more.
  if (registry::is_internal(registry::peek(e.sk_fd))) registry::close_internal(e.sk_fd);
  e.sk_fd = -1;
  e.sk_fd_events = 0;
}

// A new dup of sk, made internal, or -1. fd is one of sk's fds or -1; the
// dup is checked to be sk (by cookie), since the number may have been reused.
int dup_socket(Socket* sk, int fd) noexcept {
  if (fd < 0) fd = socket_fd(sk);
  if (fd < 0) return -1;
  int d = real::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (d < 0) return -1;
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  if (sk->cookie != 0 &&
      (real::getsockopt(d, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0 || cookie != sk->cookie)) {
    real::close(d);
    return -1;
  }
  return registry::make_internal(d);
}

// Makes sure p has an engine fd watched for at least `events`; the caller
// holds e.sk_fd_lock. False when none can be made.
bool open_fd_locked(Psock* p, Psock& e, int app_fd, uint32_t events) noexcept {
  if (e.sk_fd >= 0 && !registry::is_internal(registry::peek(e.sk_fd))) {
    // The program closed it: its watch went with the file only if no other fd remained.
    if (EventLoop* loop = EventLoop::get()) loop->unwatch(e.sk_fd);
    e.sk_fd = -1;
    e.sk_fd_events = 0;
  }
  if (e.sk_fd >= 0 && (e.sk_fd_events & events) == events) return true;
  Socket* sk = p->sk();
  if (!sk) return false;
  EventLoop* loop = EventLoop::get();
  if (!loop) return false;
  if (e.sk_fd < 0) {
    e.sk_fd = dup_socket(sk, app_fd);
    if (e.sk_fd < 0) return false;
  } else {
    loop->unwatch(e.sk_fd);
  }
  const uint32_t want = e.sk_fd_events | events;
  const uint64_t gen = generation(p);
  if (!loop->watch(e.sk_fd, want, [p, gen](uint32_t ev) { on_event(p, gen, ev); })) {
    e.sk_fd_events = 0;
    close_fd_locked(e);
    return false;
  }
  e.sk_fd_events = want;
  return true;
}

void held_sub(Psock& e, size_t n) noexcept {
  e.rx_held.fetch_sub(n, std::memory_order_relaxed);
}

// Bytes not yet given a verdict go, counted as dropped, and what the last
// start found (a stop or a restart, as strp_stop frees them).
void drop_unparsed(Psock& e, SkPsockWorkState& st) noexcept {
  if (size_t n = st.strp.buffered()) {
    e.stats.rx.apply(Verdict::drop, n);
    held_sub(e, n);
  }
  st.strp.clear();
  st.eof = st.aborted = false;
  st.read_err = 0;
  st.rcvbuf = 0;
  close_timer(st);
}

// Every held byte goes, counted as dropped (a drop, a reset).
void discard(Psock& e, SkPsockWorkState& st) noexcept {
  drop_unparsed(e, st);
  if (size_t n = st.pending.size() - st.pending_off) {
    e.stats.rx.apply(Verdict::drop, n);
    held_sub(e, n);
  }
  std::vector<uint8_t>().swap(st.pending);
  st.pending_off = 0;
  st.pending_empty = false;
  st.target = nullptr;
}

void add_waiter(Psock* target, Psock* source) noexcept {
  Psock& t = *target;
  std::lock_guard g(t.waiters_lock);
  const uint64_t gen = generation(source);
  for (const RxWaiter& w : t.waiters)
    if (w.psock == source && w.generation == gen) return;
  try {
    t.waiters.push_back({source, gen});
  } catch (...) {
    return;
  }
  t.has_waiters.store(true, std::memory_order_release);
}

std::vector<RxWaiter> take_waiters(Psock& e) noexcept {
  std::vector<RxWaiter> out;
  if (!e.has_waiters.load(std::memory_order_acquire)) return out;
  std::lock_guard g(e.waiters_lock);
  out.swap(e.waiters);
  e.has_waiters.store(false, std::memory_order_release);
  return out;
}

void work(Psock* p) noexcept;

// Runs each waiter again (on the loop thread).
void run_waiters(const std::vector<RxWaiter>& ws) noexcept {
  for (const RxWaiter& w : ws) {
    if (!psock_try_get(w.psock)) continue;
    PsockRef ref(w.psock);
    if (generation(w.psock) == w.generation) work(w.psock);
  }
}

enum class Applied : uint8_t { done, blocked };

// Sends bytes out of target's socket (skb_send_sock). *sent is what left.
// blocked: the send would block; EPOLLOUT on target's fd runs the source again.
Applied egress(Psock* source, Psock* target, std::span<const uint8_t> bytes, size_t* sent,
               int* err) noexcept {
  Psock& t = *target;
  *sent = 0;
  *err = 0;
  std::lock_guard g(t.sk_fd_lock);
  if (!open_fd_locked(target, t, -1, kTargetEvents)) {
    *err = EPIPE;
    return Applied::done;
  }
  while (*sent < bytes.size()) {
    ssize_t r = real::send(t.sk_fd, bytes.data() + *sent, bytes.size() - *sent,
                           MSG_DONTWAIT | MSG_NOSIGNAL);
    if (r > 0) {
      *sent += static_cast<size_t>(r);
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) {
      add_waiter(target, source);
      return Applied::blocked;
    }
    *err = r < 0 ? errno : EPIPE;
    return Applied::done;
  }
  return Applied::done;
}

// An empty datagram's verdict effect: a message of its own in a datagram
// target's queue (a 0-byte read for its reader, with the source), an empty
// datagram out of a datagram target (egress); a stream target has nothing to
// read or send.
Applied apply_empty(Psock* p, Psock& e, Verdict v, Psock* target, bool ingress,
                    const SockAddr* name) noexcept {
  int err = 0;
  const bool dgram_target = target->sk_dgram();
  if (!dgram_target) {
    // Nothing moves.
  } else if (ingress) {
    err = sk_psock_ingress_push_empty(target, name);
    if (err == -EAGAIN) {
      add_waiter(target, p);  // then look again, as apply() does
      err = sk_psock_ingress_push_empty(target, name);
      if (err == -EAGAIN) return Applied::blocked;
    }
  } else {
    Psock& t = *target;
    std::lock_guard g(t.sk_fd_lock);
    if (!open_fd_locked(target, t, -1, kTargetEvents)) {
      err = -EPIPE;
    } else {
      ssize_t r;
      do r = real::send(t.sk_fd, nullptr, 0, MSG_DONTWAIT | MSG_NOSIGNAL);
      while (r < 0 && errno == EINTR);
      if (r < 0 && errno == EAGAIN) {
        add_waiter(target, p);
        return Applied::blocked;
      }
      if (r < 0) {
        err = -errno;
        target->tx_enabled.store(false, std::memory_order_relaxed);
      }
    }
  }
  e.stats.rx.apply(err ? Verdict::drop : v, 0);
  return Applied::done;
}

// sk_psock_verdict_apply for bytes of one frame: what completed is counted
// and subtracted from held; the rest waits (blocked) or was dropped.
Applied apply(Psock* p, Psock& e, Verdict v, Psock* target, bool ingress,
              std::span<const uint8_t> bytes, size_t* done,
              const SockAddr* name = nullptr) noexcept {
  *done = bytes.size();
  if (v == Verdict::pass) {
    target = p;
    ingress = true;
  }
  // A target that is stopping (or that an error disabled) takes nothing.
  if (v == Verdict::drop || !target || !target->tx_enabled.load(std::memory_order_relaxed)) {
    e.stats.rx.apply(Verdict::drop, bytes.size());
    held_sub(e, bytes.size());
    return Applied::done;
  }
  if (bytes.empty()) return apply_empty(p, e, v, target, ingress, name);
  size_t moved = 0;
  Applied res = Applied::done;
  if (ingress) {
    moved = sk_psock_ingress_push(target, bytes, name);
    if (moved < bytes.size()) {
      // Register first, then look again: a reader that freed room in between
      // has seen the waiter.
      add_waiter(target, p);
      moved += sk_psock_ingress_push(target, bytes.subspan(moved), name);
      if (moved < bytes.size()) res = Applied::blocked;
    }
  } else {
    int err = 0;
    res = egress(p, target, bytes, &moved, &err);
    if (err) {
      // sk_psock_report_error: the target takes no more redirects.
      target->tx_enabled.store(false, std::memory_order_relaxed);
      e.stats.rx.apply(v, moved);
      e.stats.rx.apply(Verdict::drop, bytes.size() - moved);
      held_sub(e, bytes.size());
      return Applied::done;
    }
  }
  e.stats.rx.apply(v, moved);
  held_sub(e, moved);
  *done = moved;
  return res;
}

// Keeps what a blocked verdict did not apply, with its target. False when
// memory is short: the caller drops it.
bool keep_pending(SkPsockWorkState& st, Verdict v, Psock* target, bool ingress,
                  std::span<const uint8_t> rest) noexcept {
  try {
    st.pending.assign(rest.begin(), rest.end());
  } catch (...) {
    return false;
  }
  st.pending_off = 0;
  st.pending_empty = rest.empty();
  st.verdict = v;
  st.target = target ? target->sk() : nullptr;
  st.target_cookie = st.target ? st.target->cookie : 0;
  st.ingress = ingress;
  st.pending_name = st.name;
  return true;
}

// The pending target, if it is still the socket the verdict chose and still
// has its psock.
PsockRef pending_target(SkPsockWorkState& st) noexcept {
  if (!st.target || st.target->cookie != st.target_cookie) return {};
  PsockRef t = psock_get(st.target);
  if (!t || st.target->cookie != st.target_cookie) return {};
  return t;
}

// False while the pending bytes still wait.
bool flush_pending(Psock* p, Psock& e, SkPsockWorkState& st) noexcept {
  if (st.pending_off == st.pending.size() && !st.pending_empty) return true;
  std::span<const uint8_t> rest(st.pending.data() + st.pending_off,
                                st.pending.size() - st.pending_off);
  PsockRef t;
  if (st.verdict == Verdict::redirect) t = pending_target(st);
  size_t done = 0;
  Applied r = apply(p, e, st.verdict, t.get(), st.ingress, rest, &done, &st.pending_name);
  st.pending_off += done;
  if (r == Applied::blocked) return false;
  std::vector<uint8_t>().swap(st.pending);
  st.pending_off = 0;
  st.pending_empty = false;
  st.target = nullptr;
  return true;
}

void abort_strp(Psock* p, Psock& e, SkPsockWorkState& st, int err) noexcept {
  log::info("receive engine: stream parser stopped on socket cookie {}: {}", p->sk_cookie(),
            strerror(err));
  st.aborted = true;
  size_t n = st.strp.buffered();
  if (n) {
    e.stats.rx.apply(Verdict::drop, n);
    held_sub(e, n);
  }
  st.strp.clear();
  close_timer(st);
  sk_psock_rx_report(p, false, err, true);
}

void on_timer(Psock* p, uint64_t gen, uint64_t epoch) noexcept;

// strp's message timer: armed on a partial frame when SO_RCVTIMEO is set.
void arm_timer(Psock* p, Psock& e, SkPsockWorkState& st) noexcept {
  if (st.timer_armed) return;
  timeval tv{};
  socklen_t len = sizeof tv;
  {
    std::lock_guard g(e.sk_fd_lock);
    if (e.sk_fd < 0 || real::getsockopt(e.sk_fd, SOL_SOCKET, SO_RCVTIMEO, &tv, &len) != 0) return;
  }
  if (tv.tv_sec == 0 && tv.tv_usec == 0) return;
  EventLoop* loop = EventLoop::get();
  if (!loop) return;
  if (st.timer_fd < 0) {
    int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (t < 0) return;
    st.timer_fd = registry::make_internal(t);
    const uint64_t gen = generation(p), epoch = st.epoch;
    if (!loop->watch(st.timer_fd, EPOLLIN,
                     [p, gen, epoch](uint32_t) { on_timer(p, gen, epoch); })) {
      registry::close_internal(st.timer_fd);
      st.timer_fd = -1;
      return;
    }
  }
  itimerspec its{};
  its.it_value.tv_sec = tv.tv_sec;
  its.it_value.tv_nsec = tv.tv_usec * 1000;
  st.timer_armed = timerfd_settime(st.timer_fd, 0, &its, nullptr) == 0;
}

void disarm_timer(SkPsockWorkState& st) noexcept {
  if (!st.timer_armed) return;
  itimerspec its{};
  timerfd_settime(st.timer_fd, 0, &its, nullptr);
  st.timer_armed = false;
}

// Cuts and applies the buffered frames. False when a verdict's effect waits,
// the parser stopped, or the engine was stopped meanwhile.
bool run_frames(Psock* p, Psock& e, SkPsockWorkState& st) noexcept {
  while (st.strp.buffered() > 0 && !st.aborted) {
    const policy::Program* verdict = p->progs.stream_verdict.load(std::memory_order_acquire);
    if (!verdict) verdict = p->progs.skb_verdict.load(std::memory_order_acquire);
    const policy::Program* parser = p->progs.stream_parser.load(std::memory_order_acquire);
    if (!verdict || !e.rx_on.load(std::memory_order_acquire)) return false;
    size_t len = st.strp.buffered();  // verdict only: each chunk read is one message
    if (parser) {
      int64_t r = stream_parser_run(p, *parser, st.strp, st.rcvbuf);
      if (r < 0) {
        abort_strp(p, e, st, static_cast<int>(-r));
        return false;
      }
      if (r == 0) {
        arm_timer(p, e, st);
        return true;
      }
      len = static_cast<size_t>(r);
      disarm_timer(st);
    }
    std::span<uint8_t> frame = st.strp.head(len);  // the verdict may rewrite it
    SkbVerdict v = skb_verdict_run(p, *verdict, frame);
    size_t done = 0;
    Applied r = apply(p, e, v.verdict, v.target.get(), v.ingress, frame, &done, &st.name);
    if (r == Applied::blocked &&
        !keep_pending(st, v.verdict, v.target.get(), v.ingress, frame.subspan(done))) {
      log::error("receive engine: out of memory holding {} bytes: dropped", len - done);
      e.stats.rx.apply(Verdict::drop, len - done);
      held_sub(e, len - done);
      r = Applied::done;
    }
    st.strp.consume(len);
    if (r == Applied::blocked) return false;
  }
  return !st.aborted;
}

// An empty datagram: the verdict runs on it as on any other (udp_read_skb
// hands every skb to sk_psock_verdict_recv). False when its effect waits or
// the engine was stopped meanwhile.
bool run_empty(Psock* p, Psock& e, SkPsockWorkState& st) noexcept {
  const policy::Program* verdict = p->progs.stream_verdict.load(std::memory_order_acquire);
  if (!verdict) verdict = p->progs.skb_verdict.load(std::memory_order_acquire);
  if (!verdict || !e.rx_on.load(std::memory_order_acquire)) return false;
  SkbVerdict v = skb_verdict_run(p, *verdict, {});
  size_t done = 0;
  if (apply(p, e, v.verdict, v.target.get(), v.ingress, {}, &done, &st.name) == Applied::done)
    return true;
  (void)keep_pending(st, v.verdict, v.target.get(), v.ingress, {});  // no bytes: cannot fail
  return false;
}

size_t source_rcvbuf(Psock& e) noexcept {
  int v = 0;
  socklen_t len = sizeof v;
  std::lock_guard g(e.sk_fd_lock);
  if (e.sk_fd < 0 || real::getsockopt(e.sk_fd, SOL_SOCKET, SO_RCVBUF, &v, &len) != 0 || v <= 0)
    return 131072;
  return static_cast<size_t>(v);
}

// Reads one chunk into buf: > 0 bytes, 0 EOF, -1 with errno (EAGAIN: nothing
// now). With name, one datagram and its source (udp_read_skb: one skb, one
// message); it returns the datagram's full length (MSG_TRUNC) and 0 for an
// empty one.
ssize_t read_chunk(Psock& e, uint8_t* buf, size_t len, SockAddr* name) noexcept {
  std::lock_guard g(e.sk_fd_lock);
  if (e.sk_fd < 0 || !registry::is_internal(registry::peek(e.sk_fd))) {
    errno = EAGAIN;
    return -1;
  }
  iovec iov{buf, len};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  if (name) {
    m.msg_name = &name->addr;
    m.msg_namelen = sizeof name->addr;
  }
  ssize_t r;
  do r = real::recvmsg(e.sk_fd, &m, MSG_DONTWAIT | (name ? MSG_TRUNC : 0));
  while (r < 0 && errno == EINTR);
  if (name) name->len = r >= 0 ? m.msg_namelen : 0;
  return r;
}

// The size of the next datagram waiting in p's socket (0 when none).
size_t next_dgram_len(Psock& e) noexcept {
  std::lock_guard g(e.sk_fd_lock);
  if (e.sk_fd < 0) return 0;
  ssize_t r = real::recv(e.sk_fd, nullptr, 0, MSG_PEEK | MSG_TRUNC | MSG_DONTWAIT);
  return r > 0 ? static_cast<size_t>(r) : 0;
}

// Bytes in the kernel's receive queue of p's socket.
int kernel_inq(Psock& e) noexcept {
  int n = 0;
  std::lock_guard g(e.sk_fd_lock);
  if (e.sk_fd < 0 || real::ioctl(e.sk_fd, FIONREAD, reinterpret_cast<unsigned long>(&n)) != 0)
    return 0;
  return n;
}

// The stop that found bytes held is over: the reader reads the socket itself
// again, and its epoll registrations follow.
void finish_drain(Psock* p, Psock& e) noexcept {
  if (!e.rx_draining.exchange(false, std::memory_order_acq_rel)) return;
  sk_psock_rx_reading(p, false);
  if (Socket* sk = p->sk())
    if (auto* poll_link = psock_ops().poll_link) poll_link(sk);
  psock_put(p);  // the drain's reference; the caller holds another
}

// The psock work() runs on (the loop thread's), so a stop there does not
// re-enter it (nor share its read buffer).
thread_local Psock* t_working = nullptr;

// One turn of the engine on p (sk_psock_backlog and data_ready in one): the
// waiting bytes first, then the buffered frames, then new reads.
void work(Psock* p) noexcept {
  struct Working {
    Psock* prev = t_working;
    explicit Working(Psock* p) noexcept { t_working = p; }
    ~Working() { t_working = prev; }
  } working(p);
  Psock& e = *p;
  // The loop thread's read buffer (only that thread reads).
  static uint8_t* buf = new (std::nothrow) uint8_t[kReadChunk];
  if (!buf) {
    log::error("receive engine: out of memory; socket cookie {} is not read", p->sk_cookie());
    return;
  }
  SkPsockWorkState& st = e.work_state;
  const uint64_t epoch = e.rx_epoch.load(std::memory_order_acquire);
  if (st.epoch != epoch) {
    // A stop or restart since the last turn. A frame whose verdict ran stays:
    // the kernel has queued it at its target, where it still goes.
    drop_unparsed(e, st);
    st.epoch = epoch;
  }
  if (!e.rx_on.load(std::memory_order_acquire)) {
    if (flush_pending(p, e, st)) finish_drain(p, e);
    return;
  }
  if (e.rx_fork.load(std::memory_order_relaxed) != g_psock_forks.load(std::memory_order_relaxed))
    return;
  if (e.rx_predating.load(std::memory_order_acquire)) {
    // Only bytes that predate the start: they wait for the reader (kick) or a new arrival.
    if (kernel_inq(e) <= e.rx_predating_inq.load(std::memory_order_relaxed)) return;
    e.rx_predating.store(false, std::memory_order_release);
  }
  if (!flush_pending(p, e, st) || !run_frames(p, e, st)) return;
  if (st.rcvbuf == 0) {
    st.rcvbuf = source_rcvbuf(e);
    st.dgram = p->sk_dgram();
  }
  // Without a parser each chunk is one message; with one, `whole` frames what
  // one read gives, which must stay within rcvbuf as an skb does. A datagram
  // is read whole (a UDP payload is at most 65527 bytes).
  const size_t chunk = st.dgram ? kReadChunk : std::min(kReadChunk, st.rcvbuf);
  int budget = kReadBudget;
  while (!st.eof && !st.aborted) {
    if (budget-- == 0) {
      // More may wait: go on after the other sockets had their turn.
      const uint64_t gen = generation(p);
      if (EventLoop* loop = EventLoop::get()) loop->post([p, gen] { on_event(p, gen, EPOLLIN); });
      return;
    }
    // A unix datagram can be larger than the buffer (up to its sender's
    // SO_SNDBUF; UDP's cannot): its size first, so it is read whole.
    std::vector<uint8_t> big;
    uint8_t* into = buf;
    size_t cap = chunk;
    if (st.dgram && p->sk_family() == AF_UNIX) {
      if (size_t need = next_dgram_len(e); need > cap) {
        try {
          big.resize(need);
          into = big.data();
          cap = need;
        } catch (...) {
          // Read it cut below (logged).
        }
      }
    }
    ssize_t r = read_chunk(e, into, cap, st.dgram ? &st.name : nullptr);
    if (r < 0 && errno == EAGAIN) break;
    // 0 from a datagram socket is an empty datagram, never EOF (a receive
    // side shut down gives EAGAIN to MSG_DONTWAIT): it gets its verdict too.
    if (r == 0 && st.dgram) {
      if (!run_empty(p, e, st)) return;
      continue;
    }
    if (r > 0 && static_cast<size_t>(r) > cap) {
      log::warn(
          "receive engine: out of memory: a datagram of {} bytes on socket cookie {} was "
          "cut to {}",
          r, p->sk_cookie(), cap);
      r = static_cast<ssize_t>(cap);
    }
    if (r <= 0) {
      st.eof = true;
      st.read_err = r < 0 ? errno : 0;
      break;
    }
    e.stats.rx.take(static_cast<uint64_t>(r));
    e.rx_held.fetch_add(static_cast<uint64_t>(r), std::memory_order_relaxed);
    try {
      st.strp.feed({into, static_cast<size_t>(r)});
    } catch (...) {
      e.stats.rx.apply(Verdict::drop, static_cast<uint64_t>(r));
      held_sub(e, static_cast<size_t>(r));
      abort_strp(p, e, st, ENOMEM);
      return;
    }
    if (!run_frames(p, e, st)) return;
  }
  if (st.eof) {
    // A partial frame at EOF is never completed (strparser frees it).
    if (size_t n = st.strp.buffered()) {
      e.stats.rx.apply(Verdict::drop, n);
      held_sub(e, n);
      st.strp.clear();
    }
    close_timer(st);
    sk_psock_rx_report(p, true, st.read_err, false);
  }
}

void on_event(Psock* p, uint64_t gen, uint32_t events) noexcept {
  if (!psock_try_get(p)) return;
  PsockRef ref(p);
  if (generation(p) != gen) return;
  Psock& e = *p;
  if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) run_waiters(take_waiters(e));
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) work(p);
  // A datagram socket's receive side was shut down (SHUT_RD; reading it
  // never says so, MSG_DONTWAIT gives EAGAIN): its reader gets 0 once the
  // queue is empty, as from udp_recvmsg, while datagrams that still arrive
  // are read first.
  if ((events & EPOLLRDHUP) && p->sk_dgram() && e.rx_on.load(std::memory_order_acquire))
    sk_psock_rx_report(p, true, 0, false);
}

void on_timer(Psock* p, uint64_t gen, uint64_t epoch) noexcept {
  if (!psock_try_get(p)) return;
  PsockRef ref(p);
  if (generation(p) != gen) return;
  Psock& e = *p;
  SkPsockWorkState& st = e.work_state;
  uint64_t expirations;
  if (st.timer_fd >= 0) (void)!real::read(st.timer_fd, &expirations, sizeof expirations);
  if (st.epoch != epoch || !st.timer_armed) return;
  st.timer_armed = false;
  if (st.strp.partial() && !st.aborted) abort_strp(p, e, st, ETIMEDOUT);
}

// Runs the engine on p now, for a reader that found bytes predating the start
// (the kernel's recvmsg calls tcp_data_ready). With `wait` it returns after
// that turn (bounded), so a read or readiness query right after sees what
// passed: a socket inserted late is then indistinguishable from one inserted
// during the handshake. The loop thread itself cannot wait for its own turn.
void kick(Psock* p, bool wait) noexcept {
  EventLoop* loop = EventLoop::get();
  if (!loop) return;
  const uint64_t gen = generation(p);
  if (!wait || loop->on_loop_thread()) {
    loop->post([p, gen] { on_event(p, gen, EPOLLIN); });
    return;
  }
  struct Done {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
  };
  std::shared_ptr<Done> d;
  try {
    d = std::make_shared<Done>();
  } catch (...) {
    return;
  }
  loop->post([p, gen, d] {
    if (psock_try_get(p)) {
      PsockRef ref(p);
      if (generation(p) == gen) work(p);
    }
    std::lock_guard g(d->mu);
    d->done = true;
    d->cv.notify_all();
  });
  std::unique_lock g(d->mu);
  d->cv.wait_for(g, std::chrono::milliseconds(500), [&] { return d->done; });
}

// Wakes whatever waits on p after it stopped: sources with bytes for it, and
// senders blocked on its queue.
void wake_all(Psock* p, Psock& e) noexcept {
  std::vector<RxWaiter> ws = take_waiters(e);
  if (!ws.empty())
    if (EventLoop* loop = EventLoop::get()) loop->post([ws = std::move(ws)] { run_waiters(ws); });
  sk_psock_space_signal(p);
}

}  // namespace

void sk_psock_start_rx(Psock* psock, int fd) noexcept {
  if (registry::in_vfork_child()) return;
  Psock& e = *psock;
  const uint64_t forks = g_psock_forks.load(std::memory_order_relaxed);
  if (e.rx_on.load(std::memory_order_acquire) && e.rx_fork.load(std::memory_order_relaxed) == forks)
    return;
  ErrnoSaver saved;
  // A stop's bytes still going to their target go first (work() flushes them).
  if (e.rx_draining.exchange(false, std::memory_order_acq_rel)) psock_put(psock);
  e.rx_epoch.fetch_add(1, std::memory_order_acq_rel);
  e.rx_fork.store(forks, std::memory_order_relaxed);
  // Until the kernel's count is known, nothing is read.
  e.rx_predating_inq.store(INT_MAX, std::memory_order_relaxed);
  e.rx_predating.store(true, std::memory_order_release);
  e.rx_on.store(true, std::memory_order_release);
  sk_psock_rx_reading(psock, true);
  bool ok;
  {
    std::lock_guard g(e.sk_fd_lock);
    ok = open_fd_locked(psock, e, fd, kRxEvents);
  }
  if (ok) {
    const int inq = kernel_inq(e);
    if (inq > 0) {
      // They wait for the first read, readiness query or new arrival.
      e.rx_predating_inq.store(inq, std::memory_order_relaxed);
    } else {
      // Arrivals meanwhile found the engine waiting: give it a turn.
      e.rx_predating.store(false, std::memory_order_release);
      const uint64_t gen = generation(psock);
      if (EventLoop* loop = EventLoop::get())
        loop->post([psock, gen] { on_event(psock, gen, EPOLLIN); });
    }
  } else {
    // The application keeps reading its socket itself.
    log::error("receive engine: cannot watch socket cookie {}; its programs do not run",
               psock->sk_cookie());
    e.rx_on.store(false, std::memory_order_release);
    sk_psock_rx_reading(psock, false);
  }
}

void sk_psock_stop_rx(Psock* psock) noexcept {
  Psock& e = *psock;
  ErrnoSaver saved;
  const bool was_on = e.rx_on.exchange(false, std::memory_order_acq_rel);
  if (was_on) e.rx_epoch.fetch_add(1, std::memory_order_acq_rel);
  {
    std::lock_guard g(e.sk_fd_lock);
    close_fd_locked(e);
  }
  wake_all(psock, e);
  if (was_on) {
    EventLoop* loop = EventLoop::get();
    // The loop thread settles what the engine took from the socket (it may
    // be reading right now); until then the reader sees only the queue, so
    // no byte of the socket reaches it out of order. A reference keeps the
    // psock until then. Without one (the psock is being dropped) or a loop,
    // the reader has the socket at once.
    if (!loop || !psock_try_get(psock)) {
      sk_psock_rx_reading(psock, false);
    } else {
      if (e.rx_draining.exchange(true, std::memory_order_acq_rel)) psock_put(psock);
      const uint64_t gen = generation(psock);
      if (loop->on_loop_thread() && !t_working) {
        work(psock);  // a map delete from the control socket: settled before it answers
      } else {
        loop->post([psock, gen] {
          if (!psock_try_get(psock)) return;
          PsockRef ref(psock);
          if (generation(psock) == gen) work(psock);
        });
      }
    }
  }
}

namespace {

// From Psock::drop: stop, and discard what the engine held. No reference is
// left: the loop thread cannot be working on it.
void sk_psock_rx_drop(Psock* psock) noexcept {
  sk_psock_stop_rx(psock);
  discard(*psock, psock->work_state);
  psock->rx_draining.store(false, std::memory_order_relaxed);  // its reference went
  std::lock_guard g(psock->waiters_lock);
  psock->waiters.clear();
  psock->has_waiters.store(false, std::memory_order_relaxed);
}

}  // namespace

void sk_psock_rx_wake(Psock* psock) noexcept {
  Psock& e = *psock;
  std::vector<RxWaiter> ws = take_waiters(e);
  if (ws.empty()) return;
  if (EventLoop* loop = EventLoop::get()) loop->post([ws = std::move(ws)] { run_waiters(ws); });
}

bool sk_psock_rx_active(Psock* psock, int fd) noexcept {
  Psock& e = *psock;
  if (!e.rx_on.load(std::memory_order_acquire)) return false;
  if (e.rx_fork.load(std::memory_order_relaxed) != g_psock_forks.load(std::memory_order_relaxed)) {
    // A datagram socket inherited with datagrams to claim (sk_msg_fork_claims)
    // reads those first: a child that reads only the datagram it was forked
    // for starts no engine, which would take datagrams from its parent's.
    if (psock->sk_dgram() && sk_psock_msg_queued(psock)) return true;
    // Inherited over fork: this process's engine takes over now.
    e.rx_on.store(false, std::memory_order_release);
    sk_psock_start_rx(psock, fd);
  }
  return e.rx_on.load(std::memory_order_acquire);
}

bool sk_psock_rx_kick(Psock* psock, bool wait) noexcept {
  Psock& e = *psock;
  if (!e.rx_predating.load(std::memory_order_acquire) ||
      !e.rx_predating.exchange(false, std::memory_order_acq_rel))
    return false;
  kick(psock, wait);
  return true;
}

size_t sk_psock_rx_held(Psock* psock) noexcept {
  return psock->rx_held.load(std::memory_order_relaxed);
}

namespace {

// Sets field to v only if it differs: a fork child that writes a page of the
// psock pool copies it (copy-on-write), and most psocks have nothing to reset.
template <typename T, typename V>
void set_if_differs(T& field, V v) noexcept {
  if (field != v) field = v;
}

// In a fork child, for each pooled psock (live: it has a reference). Writes
// only what differs from a clean state (core/sock/fork_reset.h): every write
// to a pool page is a page copied in every child.
void sk_psock_rx_fork_child(Psock* psock, Psock& e) noexcept {
  // The loop thread is gone: no unwatch, just our copies of its fds.
  if (e.sk_fd >= 0) {
    if (registry::is_internal(registry::peek(e.sk_fd))) registry::close_internal(e.sk_fd);
    e.sk_fd = -1;
  }
  set_if_differs(e.sk_fd_events, 0u);
  if (!e.waiters.empty()) e.waiters.clear();
  if (e.has_waiters.load(std::memory_order_relaxed))
    e.has_waiters.store(false, std::memory_order_relaxed);
  {
    SkPsockWorkState& st = e.work_state;
    if (st.timer_fd >= 0) {
      registry::close_internal(st.timer_fd);
      st.timer_fd = -1;
    }
    set_if_differs(st.timer_armed, false);
    // The parent's bytes: never applied here.
    if (size_t n = st.strp.buffered() + (st.pending.size() - st.pending_off))
      e.stats.rx.in.fetch_sub(n, std::memory_order_relaxed);
    if (st.strp.buffered()) st.strp.clear();
    if (st.pending.capacity()) std::vector<uint8_t>().swap(st.pending);
    set_if_differs(st.pending_off, size_t{0});
    set_if_differs(st.pending_empty, false);
    set_if_differs(st.target, nullptr);
  }
  if (e.rx_held.load(std::memory_order_relaxed)) e.rx_held.store(0, std::memory_order_relaxed);
  // Waiters on the parent's stop eventfd are the parent's threads.
  if (e.rx_stop_fd) {
    real::close(e.rx_stop_fd->fd);
    e.rx_stop_fd->fd = -1;
    e.rx_stop_fd.reset();
  }
  const bool draining = e.rx_draining.load(std::memory_order_relaxed) &&
                        e.rx_draining.exchange(false, std::memory_order_relaxed);
  if (!psock) return;
  // The readers' eventfd is one object with the parent's: draining or
  // signalling it here would change what the parent's readers see. The
  // child makes its own on first use.
  if (e.event_fd >= 0) {
    real::close(e.event_fd);
    e.event_fd = -1;
    e.event_ready = false;
  }
  if (e.rx_on.load(std::memory_order_relaxed)) sk_psock_ingress_discard(psock);
  if (draining) {
    // The parent's loop thread was to settle it: here the reader reads the
    // socket at once (the held bytes were the parent's). The drain's
    // reference goes unless it is the last (no drop inside the fork handler).
    sk_psock_rx_reading(psock, false);
    if (psock->refcnt() > 1) psock_put(psock);
  }
}

}  // namespace

void sk_psock_rx_install_ops() noexcept {
  PsockOps& ops = psock_ops();
  ops.start_rx = sk_psock_start_rx;
  ops.stop_rx = sk_psock_stop_rx;
  ops.drop_rx = sk_psock_rx_drop;
  ops.fork_child_rx = sk_psock_rx_fork_child;
  ops.rx_wake = sk_psock_rx_wake;
}

namespace {

// Installed before any psock exists (a static initialiser; core_dep links
// this object in every user).
const bool g_rx_ops_installed = (sk_psock_rx_install_ops(), true);

}  // namespace

}  // namespace sockshim
