#include "core/maps/sock_map_base.h"

#include <errno.h>
#include <sched.h>

#include <cstring>
#include <new>

#include "core/domain/domain_maps.h"
#include "core/psock/sk_msg_queue.h"
#include "core/sock/sock_query.h"
#include "core/sock/socket.h"

namespace sockshim {

namespace {

using policy::AttachType;
using policy::Program;

// sock_map_prog_link_lookup: the map's slot for an attach type.
int prog_slot(MapProgs& p, AttachType which, const Program*** slot) noexcept {
  switch (which) {
    case AttachType::sk_msg_verdict:
      *slot = &p.msg_parser;
      return 0;
    case AttachType::sk_skb_stream_parser:
      *slot = &p.stream_parser;
      return 0;
    case AttachType::sk_skb_stream_verdict:
      if (p.skb_verdict) return -EBUSY;
      *slot = &p.stream_verdict;
      return 0;
    case AttachType::sk_skb_verdict:
      if (p.stream_verdict) return -EBUSY;
      *slot = &p.skb_verdict;
      return 0;
  }
  return -EOPNOTSUPP;
}

const Program* load(const std::atomic<const Program*>& p) noexcept {
  return p.load(std::memory_order_acquire);
}

// The readiness hooks follow sk's psock (psock_poll_link), once installed.
void poll_link(Socket* sk) noexcept {
  if (auto* link = psock_ops().poll_link) link(sk);
}

}  // namespace

int SockMapBase::prog_attach(const Program* prog, AttachType which) noexcept {
  if (!prog) return -EINVAL;
  std::lock_guard g(progs_lock_);
  const Program** slot;
  if (int r = prog_slot(progs_, which, &slot)) return r;
  *slot = prog;
  return 0;
}

int SockMapBase::prog_detach(const Program* prog, AttachType which) noexcept {
  std::lock_guard g(progs_lock_);
  const Program** slot;
  if (int r = prog_slot(progs_, which, &slot)) return r;
  if (!prog || *slot != prog) return -ENOENT;  // psock_replace_prog
  *slot = nullptr;
  return 0;
}

MapProgs SockMapBase::progs() const noexcept {
  std::lock_guard g(progs_lock_);
  return progs_;
}

int SockMapBase::update_sys(const void* key, const void* value, uint64_t flags) noexcept {
  uint64_t ufd;
  if (value_size() == sizeof(uint64_t)) {
    std::memcpy(&ufd, value, sizeof ufd);
  } else {
    uint32_t v;
    std::memcpy(&v, value, sizeof v);
    ufd = v;
  }
  if (ufd > INT32_MAX) return -EINVAL;
  int fd = static_cast<int>(ufd);
  SocketRef sock;
  if (int r = sockfd_lookup(fd, &sock, true)) return r;
  if (!sock_map_sk_is_suitable(*sock.get())) return -EOPNOTSUPP;
  std::lock_guard g(sock->lock());  // lock_sock
  if (!sock_map_sk_state_allowed(fd, *sock.get())) return -EOPNOTSUPP;
  return update_common(key, sock.get(), flags, fd);
}

int SockMapBase::update_common(const void* key, Socket* sk, uint64_t flags, int fd) noexcept {
  updating_.fetch_add(1, std::memory_order_acq_rel);
  int r = update_elem(key, sk, flags, fd);
  updating_.fetch_sub(1, std::memory_order_acq_rel);
  return r;
}

int SockMapBase::readopt(const void* key, int fd) noexcept {
  SocketRef sock;
  if (int r = sockfd_lookup(fd, &sock, true)) return r;
  if (!sock_map_sk_is_suitable(*sock.get())) return -EOPNOTSUPP;
  std::lock_guard g(sock->lock());
  if (!sock_map_sk_state_allowed(fd, *sock.get())) return -EOPNOTSUPP;
  return update_common(key, sock.get(), BPF_ANY, fd);
}

PsockRef SockMapBase::lookup_redirect(const void* key) noexcept {
  PsockRef local = lookup_psock(key);
  if (!shared_) return local;
  const uint32_t* w = gen_word_.load(std::memory_order_acquire);
  if (w ? domain::shared_map_gen(w) == synced_.load(std::memory_order_acquire) : count() == 0)
    return local;  // nothing changed in the domain since this map matched it
  return checked_lookup(key, std::move(local));
}

PsockRef SockMapBase::checked_lookup(const void* key, PsockRef local) noexcept {
  domain::DomainEntry e;
  if (!domain::domain_map_lookup({name(), static_cast<uint32_t>(type()), key_size(), max_entries()},
                                 key, &e))
    return local;  // no domain (or it failed closed): the process's maps are all there is
  if (e.gen_word) gen_word_.store(e.gen_word, std::memory_order_release);
  if (count() == 0) synced_.store(e.gen, std::memory_order_release);
  uint64_t mine = local ? local->sk()->cookie : 0;
  if (e.cookie == mine || updating_.load(std::memory_order_acquire) != 0) return local;
  // Replaced or deleted by another process since this one put it there.
  if (mine) {
    PsockRef again = lookup_psock(key);
    if (again && again->sk()->cookie == mine) delete_sys(key);
  }
  return {};  // what is at key now, if anything, only another process holds
}

void SockMapBase::follow(domain::MapGenStep step) noexcept {
  uint64_t before = step.before;
  if (step.after != step.before)
    synced_.compare_exchange_strong(before, step.after, std::memory_order_acq_rel);
}

int SockMapBase::link(Socket* sk, int fd, Psock** out) noexcept {
  MapProgs mp = progs();
  Psock* psock = nullptr;
  for (;;) {
    Psock* p = sk->psock.load(std::memory_order_acquire);
    if (!p) break;
    if (psock_try_get(p)) {
      psock = p;
      break;
    }
    // Its last link went a moment ago; the drop unpublishes it next.
    while (sk->psock.load(std::memory_order_acquire) == p) sched_yield();
  }
  bool tcp = sock_kind(*sk) == SockKind::tcp;
  if (psock) {
    PsockProgs& pp = psock->progs;
    if ((mp.msg_parser && load(pp.msg_parser)) || (mp.stream_parser && load(pp.stream_parser)) ||
        (mp.skb_verdict && (load(pp.skb_verdict) || load(pp.stream_verdict))) ||
        (mp.stream_verdict && (load(pp.skb_verdict) || load(pp.stream_verdict)))) {
      psock_put(psock);
      return -EBUSY;
    }
  } else {
    if (tcp && fd >= 0 && sock_has_ulp(fd)) return -EINVAL;  // sk_psock_init
    psock = psock_init(sk);
    if (!psock) return -ENOMEM;
  }
  PsockProgs& pp = psock->progs;
  if (mp.msg_parser) pp.msg_parser.store(mp.msg_parser, std::memory_order_release);
  if (mp.stream_parser) pp.stream_parser.store(mp.stream_parser, std::memory_order_release);
  if (mp.stream_verdict) pp.stream_verdict.store(mp.stream_verdict, std::memory_order_release);
  if (mp.skb_verdict) pp.skb_verdict.store(mp.skb_verdict, std::memory_order_release);

  bool refused = false, start = false;
  {
    std::lock_guard g(psock->link_lock);
    if (psock->rx_hook == RxHook::none) {
      if (mp.stream_parser && mp.stream_verdict) {
        if (tcp)
          psock->rx_hook = RxHook::strparser;
        else
          refused = true;
      } else if (mp.stream_verdict || mp.skb_verdict) {
        psock->rx_hook = RxHook::verdict;
      }
    }
    start = psock->rx_hook != RxHook::none;
  }
  if (refused) {
    psock_put(psock);
    return -EOPNOTSUPP;
  }
  if (start) {
    auto* start_rx = psock_ops().start_rx;
    PSOCK_WARN_ON(!start_rx);  // the receive engine installs it at start-up
    if (start_rx) start_rx(psock, fd);
  }
  poll_link(sk);
  *out = psock;
  return 0;
}

int SockMapBase::init_link(PsockLinks* out) noexcept {
  try {
    out->emplace_back();
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  return 0;
}

void SockMapBase::add_link(Psock* psock, PsockLinks& link, const void* link_raw,
                           uint32_t hash) noexcept {
  link.front() = PsockLink{this, link_raw, hash};
  std::lock_guard g(psock->link_lock);
  psock->links.splice(psock->links.end(), link);
}

void SockMapBase::unref(Psock* psock, const void* link_raw) noexcept {
  MapProgs mp = progs();
  bool strp_stop = false, verdict_stop = false;
  {
    std::lock_guard g(psock->link_lock);
    auto& links = psock->links;
    for (auto it = links.begin(); it != links.end(); ++it) {
      if (it->map != this || it->link_raw != link_raw) continue;
      // sock_map_del_link: only the map's current receive programs stop the
      // psock's; the msg program stays for the psock's life.
      bool started = psock->rx_hook != RxHook::none;
      strp_stop = started && mp.stream_parser;
      verdict_stop = started && (mp.stream_verdict || mp.skb_verdict);
      links.erase(it);
      break;
    }
    if (strp_stop) {
      psock->progs.stream_parser.store(nullptr, std::memory_order_release);
      psock->rx_hook = RxHook::none;
    }
    if (verdict_stop) {
      psock->progs.stream_verdict.store(nullptr, std::memory_order_release);
      psock->progs.skb_verdict.store(nullptr, std::memory_order_release);
      psock->rx_hook = RxHook::none;
    }
  }
  if (strp_stop || verdict_stop)
    if (auto* stop_rx = psock_ops().stop_rx) stop_rx(psock);
  poll_link(psock->sk());
  psock_put(psock);
}

void SockMapBase::shared_update(const void* key, uint64_t cookie, int fd) noexcept {
  if (!shared_) return;
  follow(domain::domain_map_update(
      {name(), static_cast<uint32_t>(type()), key_size(), max_entries()}, key, cookie, fd));
}

uint64_t SockMapBase::shared_lookup(const void* key) noexcept {
  domain::DomainEntry e;
  if (!shared_ || !domain::domain_map_lookup(
                      {name(), static_cast<uint32_t>(type()), key_size(), max_entries()}, key, &e))
    return 0;
  return e.cookie;
}

void SockMapBase::shared_delete(const void* key, uint64_t cookie) noexcept {
  if (!shared_) return;
  follow(domain::domain_map_delete(
      {name(), static_cast<uint32_t>(type()), key_size(), max_entries()}, key, cookie));
}

void SockMapBase::after_fork_child() noexcept {
  new (&progs_lock_) std::mutex();
}

void SockMapBase::wait_unlinkers() const noexcept {
  while (unlinkers_.load(std::memory_order_acquire) != 0) sched_yield();
}

void sock_map_close(Socket* sk) noexcept {
  if (!sk->psock.load(std::memory_order_acquire)) return;
  PsockRef psock;
  bool shared = false;  // in a map of the domain: this process holds it no more
  {
    std::lock_guard g(sk->lock());
    psock = psock_get(sk);
    if (!psock) return;
    // sock_map_remove_links: pop each link, then unlink it from its map. The
    // unlinker count keeps a map being freed alive until we are done with it.
    for (;;) {
      PsockLink link;
      {
        std::lock_guard lg(psock->link_lock);
        if (psock->links.empty()) break;
        link = psock->links.back();
        psock->links.pop_back();
        shared |= link.map->shared_;
        link.map->unlinkers_.fetch_add(1, std::memory_order_acq_rel);
      }
      link.map->unlink(psock.get(), link);
      link.map->unlinkers_.fetch_sub(1, std::memory_order_acq_rel);
    }
    // sk_psock_stop: nothing more is sent through it; the engine's dup of the
    // socket goes now, so the close is the last.
    psock->tx_enabled.store(false, std::memory_order_relaxed);
    if (auto* stop_rx = psock_ops().stop_rx) stop_rx(psock.get());
    // No reader is left for the stop to keep the queue's order for: the reader
    // side ends now, so the epoll shadows of the closed fd go with it.
    sk_psock_rx_reading(psock.get(), false);
    poll_link(sk);
  }
  if (shared) domain::domain_sock_closed(sk->cookie);
  // The corked bytes are freed, outside the socket's lock (the lock order:
  // a sender takes socket locks under its tx_lock).
  std::lock_guard tg(psock->tx_lock);
  sk_psock_cork_free(psock.get());
  psock->cork_bytes = 0;
}

}  // namespace sockshim
