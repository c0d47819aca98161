// The socket record: what the shim knows of one kernel socket. Every fd that
// dup/dup2/dup3/F_DUPFD made of the socket points at the same record, as every
// such fd points at the same struct file in the kernel.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>

namespace sockshim {

struct Psock;

// The TCP state as far as the shim has seen it; informational only (map insertion
// and dump ask the kernel). Values are the kernel's BPF_TCP_* numbers.
enum class TcpState : uint8_t {
  unknown = 0,
  established = 1,
  syn_sent = 2,
  syn_recv = 3,
  fin_wait1 = 4,
  fin_wait2 = 5,
  time_wait = 6,
  close = 7,
  close_wait = 8,
  last_ack = 9,
  listen = 10,
  closing = 11,
  new_syn_recv = 12,
};

const char* tcp_state_name(TcpState s) noexcept;

struct SockAddr {
  sockaddr_storage addr{};
  socklen_t len = 0;
};

// "127.0.0.1:5000", "[::1]:5000", a unix path ("@name" when abstract), or ""
// when there is no address.
std::string format_address(const SockAddr& a);

// The kernel's addresses of fd (getsockname, getpeername); len 0 for one it
// does not have.
void kernel_addresses(int fd, SockAddr* local, SockAddr* remote) noexcept;

class Socket {
 public:
  Socket() = default;
  // The registry's marker for the shim's own fds: never pooled, never released.
  struct Sentinel {};
  constexpr explicit Socket(Sentinel) : refs_(1u << 30) {}

  // Identity and shape, fixed while the record is live.
  uint64_t cookie = 0;  // the kernel's SO_COOKIE
  int family = 0;
  int type = 0;  // without SOCK_NONBLOCK / SOCK_CLOEXEC
  int protocol = 0;

  std::atomic<bool> nonblocking{false};
  std::atomic<Psock*> psock{nullptr};         // non-null while the socket is in a map
  std::atomic<uint32_t> sk_storage_elems{0};  // values in SK_STORAGE maps
  std::atomic<uint8_t> connect_state{0};      // core/sock/connect_pending.h
  // The record's place in SocketPool: a dense index for per-socket tables.
  uint32_t pool_index() const noexcept { return pool_index_; }

  // Reference counting: one reference per fd of this process that refers to the
  // socket, plus one for every hook call in flight that holds it. The record
  // returns to the pool when the count reaches zero; that is the kernel's last
  // fput, where sock_map_close runs (core/sock/sock_hooks.h). try_get and put
  // are in socket_pool.cc, with the pool the last put returns the record to.
  void get() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  bool try_get() noexcept;
  void put() noexcept;
  uint32_t refs() const noexcept { return refs_.load(std::memory_order_relaxed); }

  // Addresses and state, guarded by lock().
  std::mutex& lock() noexcept { return lock_; }
  SockAddr local, remote;
  TcpState state = TcpState::unknown;
  bool shut_rd = false, shut_wr = false;
  // Records the TCP state the shim saw; true when it changed.
  bool set_state(TcpState s) noexcept;

  // Reads family, type, protocol, cookie, flags and addresses from the kernel.
  // Returns false when fd is not a socket. errno is preserved.
  bool describe(int fd) noexcept;
  void fetch_cookie(int fd) noexcept;
  void refresh_addresses(int fd) noexcept;
  // Asks the kernel for the addresses the record lacks (a local port bound or
  // picked since, a peer connected since), keeping those it has.
  void fill_addresses(int fd) noexcept;

 private:
  friend class SocketPool;
  std::atomic<uint32_t> refs_{0};
  std::mutex lock_;
  uint32_t pool_index_ = 0;
  std::atomic<uint32_t> next_free_{0};  // pool free list link, index + 1
};

// A counted reference that puts itself.
class SocketRef {
 public:
  SocketRef() = default;
  explicit SocketRef(Socket* s) noexcept : s_(s) {}  // adopts a reference
  SocketRef(SocketRef&& o) noexcept : s_(o.s_) { o.s_ = nullptr; }
  SocketRef& operator=(SocketRef&& o) noexcept {
    if (this != &o) {
      reset();
      s_ = o.s_;
      o.s_ = nullptr;
    }
    return *this;
  }
  SocketRef(const SocketRef&) = delete;
  SocketRef& operator=(const SocketRef&) = delete;
  ~SocketRef() { reset(); }

  void reset() noexcept {
    if (s_) s_->put();
    s_ = nullptr;
  }
  Socket* get() const noexcept { return s_; }
  Socket* operator->() const noexcept { return s_; }
  explicit operator bool() const noexcept { return s_ != nullptr; }

 private:
  Socket* s_ = nullptr;
};

}  // namespace sockshim
