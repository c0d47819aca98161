// poll, ppoll, select and pselect over sockets with a psock.
#include "core/readiness/skmsg_poll.h"

#include <errno.h>

#include <memory>
#include <vector>

#include "core/maps/loaded_policy.h"
#include "core/readiness/poll_deadline.h"
#include "core/readiness/poll_wake.h"
#include "core/readiness/psock_poll.h"
#include "core/rx/sk_psock_rx.h"
#include "core/rx/skmsg_ingress.h"
#include "core/sock/blocked_waits.h"
#include "core/sock/real.h"
#include "core/sock/registry.h"

namespace sockshim {
namespace {

constexpr short kReadEvents = POLLIN | POLLRDNORM;

// A socket read that the kernel alone reports on until a psock is born for it
// (poll_wake.h): a blocking call waits on its thread's wake eventfd too. Only
// a policy makes psocks: a program without one pays nothing.
bool unborn(Socket* s, short events) noexcept {
  return (events & kReadEvents) && !registry::is_internal(s) && current_policy();
}

}  // namespace

PsockRef psock_at(int fd) noexcept {
  Socket* s = registry::peek(fd);
  if (!s || !s->psock.load(std::memory_order_acquire)) return {};
  SocketRef r = registry::get(fd);
  return r ? psock_get(r.get()) : PsockRef();
}

short psock_revents(Psock* p, short events) noexcept {
  const bool reading = events & (kReadEvents | POLLRDHUP);
  return static_cast<short>(sk_psock_poll(p, reading) & (events | POLLHUP | POLLERR));
}

bool psock_poll_wanted(const pollfd* fds, nfds_t n, bool may_block) noexcept {
  for (nfds_t i = 0; i < n; ++i)
    if (Socket* s = registry::peek(fds[i].fd)) {
      if (Psock* p = s->psock.load(std::memory_order_relaxed)) {
        // Without read interest only an engine-read socket's POLLHUP differs.
        if ((fds[i].events & kReadEvents) ||
            p->progs.stream_verdict.load(std::memory_order_relaxed) ||
            p->progs.skb_verdict.load(std::memory_order_relaxed))
          return true;
      } else if (may_block && unborn(s, fds[i].events)) {
        return true;
      }
    }
  return false;
}

namespace {

struct PollEntry {
  nfds_t index;
  PsockRef psock;
  bool engine_reads = false;
  std::shared_ptr<RxStopFd>
      stop;  // while engine_reads: signalled when the reader gets the socket back
};

// Brings what the kernel is asked for e in line with whether p's reader sees
// only its queue (then the kernel is asked only for what the engine does not
// stand in for, and the wait includes the stop eventfd), and runs the engine
// on bytes that predate its start: a query of the read side is, like a read,
// their tcp_data_ready.
void poll_refresh(PollEntry& e, const pollfd& asked, pollfd& sent, bool first) noexcept {
  Psock* p = e.psock.get();
  bool engine_reads = sk_psock_engine_reads(p);
  if (engine_reads && (asked.events & (kReadEvents | POLLRDHUP))) sk_psock_rx_kick(p, true);
  e.stop.reset();
  if (engine_reads && !sk_psock_rx_stop_wait(p, &e.stop)) engine_reads = false;
  if (first || engine_reads != e.engine_reads) {
    // Also undoes a hang-up's fd = -1 below once the reader has the socket back.
    sent.fd = asked.fd;
    sent.events = engine_reads ? static_cast<short>(asked.events & ~kRxMasked) : asked.events;
  }
  e.engine_reads = engine_reads;
}

// The thread's wake armed for one evaluation of a set (poll_wake.h), when a
// socket of it has no psock and the call may block.
class WakeArm {
 public:
  WakeArm(const pollfd* fds, nfds_t n, bool may_block) noexcept {
    if (!may_block) return;
    for (nfds_t i = 0; i < n; ++i)
      if (Socket* s = registry::peek(fds[i].fd))
        if (!s->psock.load(std::memory_order_acquire) && unborn(s, fds[i].events)) {
          fd_ = poll_wake_arm(fds, n);
          return;
        }
  }
  ~WakeArm() {
    if (fd_ >= 0) poll_wake_disarm();
  }
  WakeArm(const WakeArm&) = delete;
  WakeArm& operator=(const WakeArm&) = delete;
  int fd() const noexcept { return fd_; }

 private:
  int fd_ = -1;
};

// Returned by ppoll_round when a socket of the set got a psock while it
// waited: the set is evaluated again, with what is left of the timeout.
constexpr int kBorn = -0x10000;

// One evaluation of the set: its psocks found, then waits until something
// the application asked for is ready, the deadline passes or a psock is born.
int ppoll_round(pollfd* fds, nfds_t n, const PollDeadline& deadline, bool once,
                const sigset_t* mask) noexcept {
  // Armed before the psocks are looked at: a psock born later wakes the wait.
  WakeArm wake(fds, n, !once);
  std::vector<PollEntry> ps;
  std::vector<pollfd> all;
  try {
    all.assign(fds, fds + n);
    for (nfds_t i = 0; i < n; ++i)
      if (PsockRef p = psock_at(fds[i].fd)) {
        if (!sk_psock_engine_reads(p.get()) && !(fds[i].events & kReadEvents)) continue;
        ps.push_back({i, std::move(p)});
      }
    all.reserve(n + 2 * ps.size() + 1);
  } catch (...) {
    return -ENOMEM;
  }
  for (bool first = true;; first = false) {
    all.resize(n);
    bool ready = false;
    for (auto& e : ps) {
      poll_refresh(e, fds[e.index], all[e.index], first);
      ready = ready || psock_revents(e.psock.get(), fds[e.index].events) != 0;
    }
    // Within the reserved room: no allocation here.
    if (!ready)
      for (auto& e : ps) {
        if (int efd = ingress_event_fd(e.psock.get()); efd >= 0) all.push_back({efd, POLLIN, 0});
        if (e.stop) all.push_back({e.stop->fd, POLLIN, 0});
      }
    if (wake.fd() >= 0) all.push_back({wake.fd(), POLLIN, 0});
    const timespec zero{0, 0};
    timespec left;
    const timespec* remaining = ready ? &zero : poll_remaining(deadline, &left);
    int r = blocked_wait(!ready && !once,
                         [&] { return real::ppoll(all.data(), all.size(), remaining, mask); });
    if (r < 0) return -errno;
    if (wake.fd() >= 0 && (all.back().revents & POLLIN)) return kBorn;
    for (nfds_t i = 0; i < n; ++i) fds[i].revents = all[i].revents;
    for (auto& e : ps) {
      pollfd& f = fds[e.index];
      if (e.engine_reads) {
        f.revents &= static_cast<short>(~kRxHidden);
        // A hang-up the kernel reports on every call is the engine's to give:
        // stop asking the kernel, or this loop would spin until it does.
        if (f.revents == 0 && (all[e.index].revents & POLLHUP)) all[e.index].fd = -1;
      }
      f.revents |= psock_revents(e.psock.get(), f.events);
    }
    int count = 0;
    for (nfds_t i = 0; i < n; ++i) count += fds[i].revents != 0;
    // Otherwise only an eventfd woke us (another reader emptied the queue), or
    // the kernel reported what is hidden: wait again for what is left.
    if (count > 0 || once || (r == 0 && !ready) || poll_expired(deadline)) return count;
  }
}

}  // namespace

int psock_ppoll(pollfd* fds, nfds_t n, const timespec* timeout, const sigset_t* mask) noexcept {
  const PollDeadline deadline = poll_deadline(timeout);
  const bool once = timeout && timeout->tv_sec == 0 && timeout->tv_nsec == 0;
  for (;;)
    if (int r = ppoll_round(fds, n, deadline, once, mask); r != kBorn) return r;
}

bool psock_select_wanted(int n, const fd_set* readfds, bool may_block) noexcept {
  if (!readfds) return false;
  for (int fd = 0; fd < n && fd < FD_SETSIZE; ++fd)
    if (FD_ISSET(fd, readfds))
      if (Socket* s = registry::peek(fd))
        if (s->psock.load(std::memory_order_relaxed) || (may_block && unborn(s, POLLIN)))
          return true;
  return false;
}

int psock_pselect(int n, fd_set* r, fd_set* w, fd_set* e, const timespec* timeout,
                  const sigset_t* mask) noexcept {
  std::vector<pollfd> fds;
  try {
    for (int fd = 0; fd < n && fd < FD_SETSIZE; ++fd) {
      short ev = 0;
      if (r && FD_ISSET(fd, r)) ev |= POLLIN;
      if (w && FD_ISSET(fd, w)) ev |= POLLOUT;
      if (e && FD_ISSET(fd, e)) ev |= POLLPRI;
      if (ev) fds.push_back({fd, ev, 0});
    }
  } catch (...) {
    return -ENOMEM;
  }
  int res = psock_ppoll(fds.data(), fds.size(), timeout, mask);
  if (res < 0) return res;
  for (const pollfd& p : fds)
    if (p.revents & POLLNVAL) return -EBADF;
  if (r) FD_ZERO(r);
  if (w) FD_ZERO(w);
  if (e) FD_ZERO(e);
  int count = 0;
  for (const pollfd& p : fds) {
    // As the kernel's select: an error or hang-up makes a socket readable and writable.
    if (r && (p.events & POLLIN) && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
      FD_SET(p.fd, r);
      ++count;
    }
    if (w && (p.events & POLLOUT) && (p.revents & (POLLOUT | POLLERR))) {
      FD_SET(p.fd, w);
      ++count;
    }
    if (e && (p.events & POLLPRI) && (p.revents & POLLPRI)) {
      FD_SET(p.fd, e);
      ++count;
    }
  }
  return count;
}

}  // namespace sockshim
