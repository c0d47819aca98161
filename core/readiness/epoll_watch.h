// The application's epoll registrations of tracked sockets: (ep, fd) -> the
// events and data it asked for, and what the shim installed in ep for it while
// the socket has a psock (a masked registration, a shadow of the psock's
// eventfd). Kept so that a socket registered before it entered a map gets its
// readiness when its psock appears, and so that the application's own events
// and data can be given back when the psock goes.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>

namespace sockshim {

class Psock;
class Socket;

// The top bits of every event datum the shim installs: no user-space pointer and
// no small integer has them.
inline constexpr uint64_t kWatchTag = 0x5350'0000'0000'0000ULL;
inline constexpr uint64_t kWatchTagMask = 0xffff'0000'0000'0000ULL;
// Bit 0 of a token: set on the socket's own registration, clear on the shadow.
inline constexpr uint64_t kWatchOwn = 1;

inline bool is_watch_token(uint64_t data) noexcept {
  return (data & kWatchTagMask) == kWatchTag;
}

struct EpollWatch {
  int ep = -1, fd = -1;
  Socket* sk = nullptr;
  uint64_t cookie = 0;  // sk is still this socket while its cookie matches
  uint32_t events = 0;  // the application's registration
  uint64_t data = 0;
  uint64_t token = 0;  // kWatchTag | id << 1

  // Installed in ep while the socket has a psock (psock non-null): both
  // registrations carry the token instead of data.
  const Psock* psock = nullptr;
  uint64_t generation = 0;
  bool engine_reads = false;  // the socket's registration lacks EPOLLIN | EPOLLRDHUP
  int shadow_fd = -1;         // the psock's eventfd, registered in ep
  bool fired = false;         // EPOLLONESHOT: reported, not yet rearmed by the application
};

// Every member under lock; the counts are read without it to skip all of this.
struct EpollWatches {
  std::mutex lock;
  std::unordered_map<uint64_t, EpollWatch> by_key;     // (ep, fd)
  std::unordered_map<uint64_t, EpollWatch*> by_token;  // token without kWatchOwn
  std::unordered_multimap<const Socket*, EpollWatch*> by_sk;
  uint64_t next_id = 0;
  std::atomic<int> count{0};  // records
  // Set for good once a registration carried a token: from then on every epoll
  // wait looks for them (one that raced with a record's removal included).
  std::atomic<bool> tokens_used{false};

  static uint64_t key(int ep, int fd) noexcept {
    return static_cast<uint64_t>(static_cast<uint32_t>(ep)) << 32 | static_cast<uint32_t>(fd);
  }
  EpollWatch* find(int ep, int fd) noexcept;
  EpollWatch* find_token(uint64_t token) noexcept;
  // A new record for (ep, fd) (none may exist); null when memory runs out.
  EpollWatch* insert(int ep, int fd, Socket* sk, uint64_t cookie) noexcept;
  void erase(EpollWatch* w) noexcept;
};

// The process's records. Leaked on purpose: hooks run during exit.
EpollWatches& epoll_watches() noexcept;

// In a fork child: the lock a thread of the parent may have held.
void epoll_watches_after_fork_child() noexcept;

}  // namespace sockshim
