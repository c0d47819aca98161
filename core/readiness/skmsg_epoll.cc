// epoll over sockets with a psock: the record of the application's
// registrations (core/epoll_watch.h), what is installed for each while its
// socket has a psock, and the fix-up of what epoll_wait returns.
//
// Lock order: the records' lock is taken last. Nothing under it reaches a
// psock's locks or sk_psock_poll(): psock_poll_forget() runs from psock_init
// (under the socket's lock) and takes the records' lock.
#include "core/readiness/skmsg_epoll.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/maps/loaded_policy.h"
#include "core/readiness/epoll_watch.h"
#include "core/readiness/poll_wake.h"
#include "core/readiness/psock_poll.h"
#include "core/readiness/skmsg_poll.h"
#include "core/rx/sk_psock_rx.h"
#include "core/rx/skmsg_ingress.h"
#include "core/sock/errno_saver.h"
#include "core/sock/real.h"
#include "core/sock/registry.h"

namespace sockshim {
namespace {

constexpr uint32_t kFlags = EPOLLET | EPOLLONESHOT | EPOLLWAKEUP | EPOLLEXCLUSIVE;
constexpr uint32_t kOwnBits =
    EPOLLOUT | EPOLLWRNORM | EPOLLWRBAND | EPOLLPRI | EPOLLRDBAND | EPOLLMSG;

// A socket's psock as its registrations need it, found outside the records' lock.
struct PsockState {
  PsockRef ref;
  uint64_t generation = 0;
  int event_fd = -1;
  bool engine_reads = false;
};

PsockState psock_state(Socket* sk, uint64_t cookie) noexcept {
  PsockState s;
  if (sk->cookie != cookie || !sk->psock.load(std::memory_order_acquire)) return s;
  s.ref = psock_get(sk);
  if (s.ref && sk->cookie != cookie) s.ref.reset();
  if (!s.ref) return s;
  s.generation = s.ref->generation.load(std::memory_order_relaxed);
  s.event_fd = ingress_event_fd(s.ref.get());
  s.engine_reads = sk_psock_engine_reads(s.ref.get());
  return s;
}

// The socket's own registration: the application's, or while a psock stands
// in for its receive side, without that side; disarmed after EPOLLONESHOT fired.
epoll_event own_event(const EpollWatch& w) noexcept {
  if (w.psock) epoll_watches().tokens_used.store(true, std::memory_order_relaxed);
  epoll_event ev{};
  ev.events = w.events;
  ev.data.u64 = w.psock ? w.token | kWatchOwn : w.data;
  if (w.engine_reads) {
    ev.events &= ~static_cast<uint32_t>(kRxMasked);
    // Left with nothing but the hang-up the kernel reports unasked, the
    // registration would report it on every wait while the engine holds it
    // back: once per change is enough.
    if (!(ev.events & kOwnBits)) ev.events |= EPOLLET;
  }
  if (w.fired) ev.events &= kFlags;
  return ev;
}

bool wants_shadow(const EpollWatch& w) noexcept {
  return w.psock && (w.engine_reads || (w.events & (EPOLLIN | EPOLLRDNORM)));
}

epoll_event shadow_event(const EpollWatch& w) noexcept {
  epoll_event ev{};
  ev.events = w.fired ? EPOLLONESHOT : EPOLLIN | (w.events & (EPOLLET | EPOLLONESHOT));
  ev.data.u64 = w.token;
  return ev;
}

void drop_shadow(EpollWatch& w) noexcept {
  if (w.shadow_fd < 0) return;
  real::epoll_ctl(w.ep, EPOLL_CTL_DEL, w.shadow_fd, nullptr);
  w.shadow_fd = -1;
}

// Installs the shadow w needs (or removes it), after w's fields changed.
void sync_shadow(EpollWatch& w, int event_fd) noexcept {
  if (!wants_shadow(w) || event_fd < 0) {
    drop_shadow(w);
    return;
  }
  epoll_event ev = shadow_event(w);
  if (w.shadow_fd == event_fd) {
    real::epoll_ctl(w.ep, EPOLL_CTL_MOD, event_fd, &ev);
    return;
  }
  drop_shadow(w);
  // EEXIST: a dup of the socket registered in the same ep already has it;
  // that registration reports the psock.
  if (real::epoll_ctl(w.ep, EPOLL_CTL_ADD, event_fd, &ev) == 0) w.shadow_fd = event_fd;
}

// Whether fd's EPOLLONESHOT registration in ep has fired and not been rearmed:
// the kernel then keeps only its flags (ep_send_events), which fdinfo shows.
// Read where a socket registered before it had a psock gets one, to leave it
// disarmed.
bool oneshot_fired(int ep, int fd) noexcept {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/fdinfo/%d", ep);
  int f = open(path, O_RDONLY | O_CLOEXEC);
  if (f < 0) return false;
  std::string text;
  char buf[4096];
  ssize_t n;
  try {
    while ((n = real::read(f, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  } catch (...) {
  }
  real::close(f);
  for (size_t at = text.find("tfd:"); at != std::string::npos; at = text.find("tfd:", at + 4)) {
    int tfd;
    unsigned events;
    if (sscanf(text.c_str() + at, "tfd: %d events: %x", &tfd, &events) == 2 && tfd == fd)
      return (events & ~kFlags) == 0;
  }
  return false;
}

// Brings what ep holds for w in line with the socket's psock. False when the
// application's registration is gone (the record should go).
bool apply(EpollWatch& w, const PsockState& ps) noexcept {
  const Psock* p = ps.ref.get();
  const uint64_t gen = ps.generation;
  if (w.psock == p && w.generation == gen && w.engine_reads == ps.engine_reads) {
    sync_shadow(w, ps.event_fd);
    return true;
  }
  EpollWatch next = w;
  next.psock = p;
  next.generation = gen;
  next.engine_reads = p && ps.engine_reads;
  // Its events were the kernel's alone until now: one that fired stays disarmed.
  if (!w.psock && p && (w.events & EPOLLONESHOT)) next.fired = oneshot_fired(w.ep, w.fd);
  epoll_event ev = own_event(next);
  if (real::epoll_ctl(w.ep, EPOLL_CTL_MOD, w.fd, &ev) != 0) {
    // EINVAL (an EPOLLEXCLUSIVE registration cannot change): left as it is.
    if (errno != ENOENT && errno != EBADF) return true;
    drop_shadow(w);
    return false;
  }
  if (w.shadow_fd >= 0 && (w.psock != p || w.generation != gen)) drop_shadow(w);
  w.psock = next.psock;
  w.generation = next.generation;
  w.engine_reads = next.engine_reads;
  w.fired = next.fired;
  sync_shadow(w, ps.event_fd);
  return true;
}

// True when sk's psock is no longer the one (or in the state) ps describes.
bool changed_since(Socket* sk, const PsockState& ps) noexcept {
  Psock* now = sk->psock.load(std::memory_order_acquire);
  if (now != ps.ref.get()) return true;
  return now && (now->generation.load(std::memory_order_relaxed) != ps.generation ||
                 sk_psock_engine_reads(now) != ps.engine_reads);
}

// Whether epoll_ctl on a socket is recorded: only while a policy (which alone
// makes psocks) is loaded, so a program without one pays nothing.
bool recording() noexcept {
  return current_policy() != nullptr;
}

}  // namespace

namespace {

// epoll_ctl with ps, sk's psock as read just before, under the records' lock.
int record_ctl(EpollWatches& ws, int ep, int op, int fd, epoll_event* event, Socket* sk,
               uint64_t cookie, bool record, const PsockState& ps) noexcept {
  std::lock_guard g(ws.lock);
  EpollWatch* w = ws.find(ep, fd);
  if (op == EPOLL_CTL_DEL || !event) {
    int r = real::epoll_ctl(ep, op, fd, event);
    if (r == 0 && w) {
      ErrnoSaver saved;
      drop_shadow(*w);
      ws.erase(w);
    }
    return r;
  }
  if (op == EPOLL_CTL_MOD && w && !w->psock && !ps.ref) {
    // The common case of a socket outside every map: the record follows.
    int r = real::epoll_ctl(ep, op, fd, event);
    if (r == 0) {
      w->events = event->events;
      w->data = event->data.u64;
      w->fired = false;
    }
    return r;
  }
  // An ADD over a record: if the kernel takes it, the registration recorded
  // went with its epoll instance (the record is reused) or with its socket.
  if (op == EPOLL_CTL_ADD && w && (w->sk != sk || w->cookie != cookie)) {
    ErrnoSaver saved;
    drop_shadow(*w);
    ws.erase(w);
    w = nullptr;
  }
  const bool stale = op == EPOLL_CTL_ADD && w;
  const bool fresh = !w;
  if (fresh && (!record || !(w = ws.insert(ep, fd, sk, cookie))))
    return real::epoll_ctl(ep, op, fd, event);
  EpollWatch next = *w;
  next.events = event->events;
  next.data = event->data.u64;
  next.fired = false;
  next.psock = ps.ref.get();
  next.generation = ps.generation;
  next.engine_reads = ps.ref && ps.engine_reads;
  epoll_event ev = own_event(next);
  int r = real::epoll_ctl(ep, op, fd, &ev);
  ErrnoSaver saved;
  if (r != 0) {
    if (fresh) ws.erase(w);
  } else {
    if (stale || w->psock != next.psock || w->generation != next.generation) drop_shadow(*w);
    next.shadow_fd = w->shadow_fd;
    *w = next;
    sync_shadow(*w, ps.event_fd);
  }
  return r;
}

}  // namespace

int psock_epoll_ctl(int ep, int op, int fd, epoll_event* event) noexcept {
  EpollWatches& ws = epoll_watches();
  Socket* sk = registry::peek(fd);
  const bool record = sk && recording();
  if (!record && ws.count.load(std::memory_order_relaxed) == 0)
    return real::epoll_ctl(ep, op, fd, event) == 0 ? 0 : -errno;
  const uint64_t cookie = sk ? sk->cookie : 0;
  PsockState ps = sk && op != EPOLL_CTL_DEL ? psock_state(sk, cookie) : PsockState();
  if (record_ctl(ws, ep, op, fd, event, sk, cookie, record, ps) != 0) return -errno;
  // The socket entered or left a map while this ran: its psock_poll_link may
  // have come before the record.
  if (record && op != EPOLL_CTL_DEL && changed_since(sk, ps)) psock_poll_link(sk);
  // A registration is a readiness query: bytes that predate the engine's
  // start go through it now, and a wait right after sees what passed.
  if (ps.engine_reads && op != EPOLL_CTL_DEL) {
    ErrnoSaver saved;
    sk_psock_rx_kick(ps.ref.get(), true);
  }
  return 0;
}

bool psock_epoll_wanted() noexcept {
  return epoll_watches().tokens_used.load(std::memory_order_relaxed);
}

namespace {

// One watch seen in an epoll_wait result: what its record said then, and what
// its events add up to.
struct Seen {
  EpollWatch w;
  uint32_t own = 0;  // the socket's own registration reported these
  uint32_t report = 0;
  int first = -1;  // index of its first event
};

// The events the application gets for s, from the kernel's bits and its psock.
// Sets *stale when the record no longer matches the socket's psock.
uint32_t evaluate(const Seen& s, bool* stale) noexcept {
  const EpollWatch& w = s.w;
  PsockRef p;
  if (w.sk && w.sk->cookie == w.cookie) {
    p = psock_get(w.sk);
    if (p && w.sk->cookie != w.cookie) p.reset();
  }
  const bool engine_reads = p && sk_psock_engine_reads(p.get());
  uint32_t bits = s.own;
  *stale =
      p.get() != w.psock || (p && (p->generation.load(std::memory_order_relaxed) != w.generation ||
                                   engine_reads != w.engine_reads));
  if (*stale) {
    // What ep reported was installed for another state: ask the kernel now.
    bits = 0;
    pollfd pf{w.fd, static_cast<short>(w.events & ~kFlags), 0};
    if (registry::peek(w.fd) == w.sk && real::poll(&pf, 1, 0) > 0)
      bits = static_cast<uint16_t>(pf.revents);
  }
  if (engine_reads) bits &= ~static_cast<uint32_t>(kRxHidden);
  if (p) bits |= static_cast<uint16_t>(psock_revents(p.get(), static_cast<short>(w.events)));
  return bits & (w.events | EPOLLHUP | EPOLLERR) & ~kFlags;
}

}  // namespace

int psock_epoll_fixup(epoll_event* events, int n) noexcept {
  int i0 = 0;
  while (i0 < n && !is_watch_token(events[i0].data.u64)) ++i0;
  if (i0 == n) return n;
  EpollWatches& ws = epoll_watches();
  ErrnoSaver saved;
  std::vector<Seen> seen;
  std::vector<int> owner;  // event -> seen, -1 none, -2 dropped
  try {
    owner.assign(static_cast<size_t>(n), -1);
    seen.reserve(static_cast<size_t>(n - i0));
    std::lock_guard g(ws.lock);
    for (int i = i0; i < n; ++i) {
      uint64_t token = events[i].data.u64;
      if (!is_watch_token(token)) continue;
      EpollWatch* w = ws.find_token(token);
      if (!w) {
        owner[i] = -2;  // a registration already removed
        continue;
      }
      auto it = std::find_if(seen.begin(), seen.end(),
                             [&](const Seen& s) { return s.w.token == w->token; });
      if (it == seen.end()) it = seen.insert(seen.end(), Seen{*w, 0, 0, i});
      owner[i] = static_cast<int>(it - seen.begin());
      if (token & kWatchOwn) it->own |= events[i].events;
    }
  } catch (...) {
    return n;  // no memory: give the events as they are rather than none
  }
  std::vector<Socket*> resync;
  for (Seen& s : seen) {
    bool stale;
    s.report = evaluate(s, &stale);
    if (stale && s.w.sk) {
      try {
        resync.push_back(s.w.sk);
      } catch (...) {
      }
    }
  }
  {
    std::lock_guard g(ws.lock);
    for (Seen& s : seen) {
      EpollWatch* w = ws.find_token(s.w.token);
      if (!w || w->fired) {
        s.report = 0;
        continue;
      }
      if (!(w->events & EPOLLONESHOT)) continue;
      // EPOLLONESHOT: one report until the application rearms; the kernel
      // disarmed the registration that fired, the other is disarmed here. One
      // that fired for nothing the application sees is armed again.
      if (s.report) w->fired = true;
      epoll_event own = own_event(*w);
      real::epoll_ctl(w->ep, EPOLL_CTL_MOD, w->fd, &own);
      if (w->shadow_fd >= 0) {
        epoll_event sh = shadow_event(*w);
        real::epoll_ctl(w->ep, EPOLL_CTL_MOD, w->shadow_fd, &sh);
      }
    }
  }
  int out = 0;
  for (int i = 0; i < n; ++i) {
    if (owner[i] == -1) {
      events[out++] = events[i];
      continue;
    }
    if (owner[i] < 0) continue;
    const Seen& s = seen[static_cast<size_t>(owner[i])];
    if (s.first != i || !s.report) continue;
    events[out].events = s.report;
    events[out].data.u64 = s.w.data;
    ++out;
  }
  for (Socket* sk : resync) psock_poll_link(sk);
  return out;
}

void psock_poll_link(Socket* sk) noexcept {
  EpollWatches& ws = epoll_watches();
  if (ws.count.load(std::memory_order_relaxed) == 0) return;
  ErrnoSaver saved;
  // The state is read before the lock: one that changed meanwhile (a link or
  // unlink racing with this one) is applied again.
  PsockState ps;
  bool registered = false;
  for (int round = 0; round < 4; ++round) {
    ps = psock_state(sk, sk->cookie);
    {
      std::lock_guard g(ws.lock);
      auto [lo, hi] = ws.by_sk.equal_range(sk);
      registered = lo != hi;
      std::vector<EpollWatch*> gone;
      for (auto it = lo; it != hi; ++it) {
        EpollWatch& w = *it->second;
        // A record of an earlier socket at this address: its registrations went with it.
        if (w.cookie != sk->cookie || !apply(w, ps)) {
          drop_shadow(w);
          try {
            gone.push_back(&w);
          } catch (...) {
          }
        }
      }
      for (EpollWatch* w : gone) ws.erase(w);
    }
    if (!changed_since(sk, ps)) break;
  }
  // A socket already in an epoll set is being waited for: bytes that predate
  // its engine's start go through it now, as for an epoll_ctl after it.
  if (registered && ps.engine_reads) sk_psock_rx_kick(ps.ref.get(), false);
}

void psock_poll_forget(int event_fd) noexcept {
  EpollWatches& ws = epoll_watches();
  if (ws.count.load(std::memory_order_relaxed) == 0) return;
  std::lock_guard g(ws.lock);
  for (auto& [key, w] : ws.by_key)
    if (w.shadow_fd == event_fd) drop_shadow(w);
}

void psock_epoll_created(int ep) noexcept {
  EpollWatches& ws = epoll_watches();
  if (ws.count.load(std::memory_order_relaxed) == 0) return;
  std::lock_guard g(ws.lock);
  std::vector<EpollWatch*> stale;
  for (auto& [key, w] : ws.by_key)
    if (w.ep == ep) {
      try {
        stale.push_back(&w);
      } catch (...) {
      }
    }
  // Their registrations died with the old instance; only the records remain.
  for (EpollWatch* w : stale) ws.erase(w);
}

// The psock reaches the records through these (its poll_link and poll_forget
// operations), installed before any psock exists.
void skmsg_poll_install_ops() noexcept {
  PsockOps& ops = psock_ops();
  // A psock born or changed: poll and select waits on its socket look again
  // (poll_wake.h), its epoll registrations follow it.
  ops.poll_link = [](Socket* sk) noexcept {
    poll_wake_sk(sk);
    psock_poll_link(sk);
  };
  ops.poll_forget = psock_poll_forget;
}

namespace {

const bool g_poll_ops_installed = (skmsg_poll_install_ops(), true);

}  // namespace

}  // namespace sockshim
