#include "core/skmsg_poll.h"

#include <errno.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <new>
#include <vector>

#include "core/psock.h"
#include "core/real.h"
#include "core/registry.h"
#include "core/skmsg_ingress.h"

namespace sockshim {
namespace {

constexpr short kReadEvents = POLLIN | POLLRDNORM;

PsockRef psock_at(int fd) noexcept {
  Socket* s = registry::peek(fd);
  if (!s || !s->psock.load(std::memory_order_acquire)) return {};
  SocketRef r = registry::get(fd);
  return r ? psock_get(r.get()) : PsockRef();
}

// An epoll registration of a psock's eventfd standing in for socket fd.
struct Shadow {
  int ep, fd, event_fd;
  const Psock* psock;
  uint64_t generation;
  uint64_t data;  // the socket's event data, which the eventfd reports too
};

struct Shadows {
  std::mutex lock;
  std::vector<Shadow> list;
  std::atomic<int> count{0};
};

Shadows& shadows() noexcept {
  static Shadows* s = new Shadows;  // leaked on purpose: hooks run during exit
  return *s;
}

}  // namespace

bool psock_poll_wanted(const pollfd* fds, nfds_t n) noexcept {
  for (nfds_t i = 0; i < n; ++i)
    if (Socket* s = registry::peek(fds[i].fd))
      if (s->psock.load(std::memory_order_relaxed) && (fds[i].events & kReadEvents)) return true;
  return false;
}

int psock_ppoll(pollfd* fds, nfds_t n, const timespec* timeout, const sigset_t* mask) noexcept {
  struct Entry {
    nfds_t index;
    PsockRef psock;
  };
  std::vector<Entry> ps;
  std::vector<pollfd> all;
  try {
    for (nfds_t i = 0; i < n; ++i)
      if (fds[i].events & kReadEvents)
        if (PsockRef p = psock_at(fds[i].fd)) ps.push_back({i, std::move(p)});
    all.assign(fds, fds + n);
  } catch (...) {
    errno = ENOMEM;
    return -1;
  }
  for (;;) {
    bool ready = false;
    for (auto& e : ps) ready = ready || sk_psock_readable(e.psock.get());
    all.resize(n);
    if (!ready)
      for (auto& e : ps)
        if (int efd = ingress_event_fd(e.psock.get()); efd >= 0) all.push_back({efd, POLLIN, 0});
    const timespec zero{0, 0};
    int r = real::ppoll(all.data(), all.size(), ready ? &zero : timeout, mask);
    if (r < 0) return r;
    int count = 0;
    for (nfds_t i = 0; i < n; ++i) fds[i].revents = all[i].revents;
    for (auto& e : ps)
      if (sk_psock_readable(e.psock.get()))
        fds[e.index].revents |= static_cast<short>(fds[e.index].events & kReadEvents);
    for (nfds_t i = 0; i < n; ++i) count += fds[i].revents != 0;
    // Only an eventfd of a queue that another reader emptied woke us: wait again.
    if (count == 0 && r > 0) continue;
    return count;
  }
}

bool psock_select_wanted(int n, const fd_set* readfds) noexcept {
  if (!readfds) return false;
  for (int fd = 0; fd < n && fd < FD_SETSIZE; ++fd)
    if (FD_ISSET(fd, readfds))
      if (Socket* s = registry::peek(fd))
        if (s->psock.load(std::memory_order_relaxed)) return true;
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
    errno = ENOMEM;
    return -1;
  }
  int res = psock_ppoll(fds.data(), fds.size(), timeout, mask);
  if (res < 0) return res;
  for (const pollfd& p : fds)
    if (p.revents & POLLNVAL) {
      errno = EBADF;
      return -1;
    }
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

void psock_epoll_ctl(int ep, int op, int fd, const epoll_event* event) noexcept {
  int saved = errno;
  Shadows& sh = shadows();
  if (op == EPOLL_CTL_DEL || op == EPOLL_CTL_MOD) {
    std::lock_guard g(sh.lock);
    auto it = std::find_if(sh.list.begin(), sh.list.end(),
                           [&](const Shadow& s) { return s.ep == ep && s.fd == fd; });
    if (it != sh.list.end()) {
      if (op == EPOLL_CTL_DEL) {
        real::epoll_ctl(ep, EPOLL_CTL_DEL, it->event_fd, nullptr);
        sh.list.erase(it);
        sh.count.fetch_sub(1, std::memory_order_relaxed);
      } else {
        epoll_event ev = *event;
        ev.events &= EPOLLIN | EPOLLRDNORM | EPOLLET | EPOLLONESHOT;
        real::epoll_ctl(ep, EPOLL_CTL_MOD, it->event_fd, &ev);
        it->data = event->data.u64;
      }
      errno = saved;
      return;
    }
  }
  if ((op == EPOLL_CTL_ADD || op == EPOLL_CTL_MOD) && event) {
    if (PsockRef p = psock_at(fd)) {
      int efd = ingress_event_fd(p.get());
      epoll_event ev = *event;
      ev.events &= EPOLLIN | EPOLLRDNORM | EPOLLET | EPOLLONESHOT;
      std::lock_guard g(sh.lock);
      if (efd >= 0 && real::epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) == 0) {
        try {
          sh.list.push_back({ep, fd, efd, p.get(), p->generation.load(std::memory_order_relaxed),
                             event->data.u64});
          sh.count.fetch_add(1, std::memory_order_relaxed);
        } catch (...) {
          real::epoll_ctl(ep, EPOLL_CTL_DEL, efd, nullptr);
        }
      }
    }
  }
  errno = saved;
}

bool psock_epoll_wanted(int ep) noexcept {
  Shadows& sh = shadows();
  if (sh.count.load(std::memory_order_relaxed) == 0) return false;
  std::lock_guard g(sh.lock);
  return std::any_of(sh.list.begin(), sh.list.end(), [&](const Shadow& s) { return s.ep == ep; });
}

int psock_epoll_fixup(int ep, epoll_event* events, int n) noexcept {
  int saved = errno;
  Shadows& sh = shadows();
  std::lock_guard g(sh.lock);
  int out = 0;
  for (int i = 0; i < n; ++i) {
    epoll_event ev = events[i];
    // The stand-in of a psock that went away (socket closed, or out of its
    // maps) is removed; its event counts only if the socket itself is ready.
    auto it = std::find_if(sh.list.begin(), sh.list.end(),
                           [&](const Shadow& s) { return s.ep == ep && s.data == ev.data.u64; });
    if (it != sh.list.end()) {
      Socket* sk = registry::peek(it->fd);
      Psock* p = sk ? sk->psock.load(std::memory_order_acquire) : nullptr;
      if (p != it->psock || p->generation.load(std::memory_order_relaxed) != it->generation) {
        int fd = it->fd;
        real::epoll_ctl(ep, EPOLL_CTL_DEL, it->event_fd, nullptr);
        sh.list.erase(it);
        sh.count.fetch_sub(1, std::memory_order_relaxed);
        pollfd pf{fd, static_cast<short>(ev.events & (EPOLLIN | EPOLLOUT | EPOLLPRI)), 0};
        if (!sk || real::poll(&pf, 1, 0) <= 0) continue;
        ev.events = static_cast<uint32_t>(pf.revents);
      }
    }
    bool merged = false;
    for (int j = 0; j < out; ++j)
      if (events[j].data.u64 == ev.data.u64) {
        events[j].events |= ev.events;
        merged = true;
        break;
      }
    if (!merged) events[out++] = ev;
  }
  errno = saved;
  return out;
}

void psock_poll_forget(int event_fd) noexcept {
  Shadows& sh = shadows();
  std::lock_guard g(sh.lock);
  auto it = std::remove_if(sh.list.begin(), sh.list.end(), [&](const Shadow& s) {
    if (s.event_fd != event_fd) return false;
    real::epoll_ctl(s.ep, EPOLL_CTL_DEL, s.event_fd, nullptr);
    return true;
  });
  sh.count.fetch_sub(static_cast<int>(sh.list.end() - it), std::memory_order_relaxed);
  sh.list.erase(it, sh.list.end());
}

void skmsg_poll_after_fork_child() noexcept {
  new (&shadows().lock) std::mutex();
}

}  // namespace sockshim
