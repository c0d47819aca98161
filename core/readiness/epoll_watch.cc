#include "core/readiness/epoll_watch.h"

#include <unistd.h>

#include <new>

namespace sockshim {

EpollWatch* EpollWatches::find(int ep, int fd) noexcept {
  auto it = by_key.find(key(ep, fd));
  return it == by_key.end() ? nullptr : &it->second;
}

EpollWatch* EpollWatches::find_token(uint64_t token) noexcept {
  auto it = by_token.find(token & ~kWatchOwn);
  return it == by_token.end() ? nullptr : it->second;
}

EpollWatch* EpollWatches::insert(int ep, int fd, Socket* sk, uint64_t cookie) noexcept {
  try {
    // Element references survive rehashing, so the indexes may hold pointers.
    EpollWatch& w = by_key[key(ep, fd)];
    w.ep = ep;
    w.fd = fd;
    w.sk = sk;
    w.cookie = cookie;
    w.token = kWatchTag | (++next_id << 1 & ~kWatchTagMask);
    try {
      by_token.emplace(w.token, &w);
      by_sk.emplace(sk, &w);
    } catch (...) {
      by_token.erase(w.token);
      by_key.erase(key(ep, fd));
      return nullptr;
    }
    count.fetch_add(1, std::memory_order_relaxed);
    return &w;
  } catch (...) {
    return nullptr;
  }
}

void EpollWatches::erase(EpollWatch* w) noexcept {
  by_token.erase(w->token);
  auto [lo, hi] = by_sk.equal_range(w->sk);
  for (auto it = lo; it != hi; ++it)
    if (it->second == w) {
      by_sk.erase(it);
      break;
    }
  by_key.erase(key(w->ep, w->fd));
  count.fetch_sub(1, std::memory_order_relaxed);
}

EpollWatches& epoll_watches() noexcept {
  // In static storage, never destroyed, and made without an allocation: the
  // first caller (an insertion's psock_poll_link) may be short of memory.
  alignas(EpollWatches) static unsigned char storage[sizeof(EpollWatches)];
  static EpollWatches* w = new (storage) EpollWatches;
  return *w;
}

void epoll_watches_after_fork_child() noexcept {
  EpollWatches& w = epoll_watches();
  new (&w.lock) std::mutex();
  // The epoll instances are shared with the parent: the child's new tokens
  // must not be the parent's next ones.
  w.next_id = static_cast<uint64_t>(getpid()) << 24;
}

}  // namespace sockshim
