// Data hooks: the send and receive families, read/write on sockets, sendfile.
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <tuple>

#include "core/psock/psock.h"
#include "core/rx/skmsg_ingress.h"
#include "core/sock/errno_saver.h"
#include "core/sock/tcp_connect.h"
#include "core/tx/tcp_bpf.h"
#include "shim/hook.h"

using namespace sockshim;

namespace {

// A hook's call on a connect pending socket (core/tcp_connect.h): the
// completion, and so the insertion into maps, runs before the call's bytes
// move; then the hook runs again (Hook, the socket no longer pending), or, for
// a non-blocking call while the handshake is still going, the plain call
// (Plain: no map holds a socket in SYN_SENT). A separate function with the
// hook's own arguments, so the hook only tail-calls it: its path stays one
// more load. FlagsAt is the index of the call's flags among args, -1 for none.
template <auto Hook, auto Plain, bool Send, int FlagsAt, typename... Args>
[[gnu::cold, gnu::noinline]] auto connecting(int fd, Args... args) noexcept {
  int flags = 0;
  if constexpr (FlagsAt >= 0) flags = std::get<FlagsAt>(std::tie(args...));
  int r = tcp_connect_before_io(fd, Send, flags);
  if (r < 0) return static_cast<decltype(Hook(fd, args...))>(shim::libc_result(r));
  if (r == 0) return shim::on_tracked(fd, nullptr, [&] { return Plain(fd, args...); });
  return Hook(fd, args...);
}

inline bool pending(Socket* s) noexcept {
  return s && tcp_connect_pending(s);
}

// A call only a socket accepts: an untracked fd that answers it is a socket the
// shim never saw (made before it loaded, inherited over exec): adopt it.
template <typename Call>
auto socket_call(int fd, Socket* s, Call&& call) noexcept {
  if (s) [[likely]]
    return shim::on_tracked(fd, s, call);
  return shim::adopt_after(fd, call());
}

// A call any fd accepts (read, write): untracked fds go straight through.
template <typename Call>
auto fd_call(int fd, Socket* s, Call&& call) noexcept {
  if (!s) [[likely]]
    return call();
  return shim::on_tracked(fd, s, call);
}

// Sockets passed with SCM_RIGHTS are new fds of this process.
void track_passed_fds(const msghdr* msg) noexcept {
  if (!msg || !msg->msg_control || msg->msg_controllen == 0) return;
  for (cmsghdr* c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(const_cast<msghdr*>(msg), c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char* data = CMSG_DATA(c);
    for (size_t i = 0; i < n; ++i) {
      int fd;
      __builtin_memcpy(&fd, data + i * sizeof(int), sizeof fd);
      registry::track_received(fd);
    }
  }
}

// A send on a socket whose psock has an sk_msg program runs the verdict.
ssize_t psock_send(int fd, const iovec* iov, size_t n, int flags) noexcept {
  SocketRef s = registry::get(fd);
  if (!s) {
    msghdr m{};
    m.msg_iov = const_cast<iovec*>(iov);
    m.msg_iovlen = n;
    return real::sendmsg(fd, &m, flags);
  }
  return shim::libc_result(tcp_bpf_sendmsg(fd, s.get(), iov, n, flags));
}

bool has_psock(Socket* s) noexcept {
  return s->psock.load(std::memory_order_acquire) != nullptr;
}

// The psock-aware shapes of socket_call and fd_call. The psock path is a
// callable, so the iovec or msghdr it needs is built only on that path, and only
// the psock pointer is tested on the way to the real call: the pass-through path
// stays a table load, one more load and the real call; whether the psock has an
// sk_msg program is asked only of sockets that have one.
template <typename Psock, typename Call>
ssize_t socket_send(int fd, Socket* s, Psock&& psock_path, Call&& call) noexcept {
  if (s) [[likely]] {
    if (has_psock(s)) [[unlikely]]
      return tcp_bpf_active(s) ? psock_path() : shim::on_tracked(fd, s, call);
    return shim::on_tracked(fd, s, call);
  }
  return shim::adopt_after(fd, call());
}

template <typename Psock, typename Call>
ssize_t fd_send(int fd, Socket* s, Psock&& psock_path, Call&& call) noexcept {
  if (!s) [[likely]]
    return call();
  if (has_psock(s)) [[unlikely]]
    return tcp_bpf_active(s) ? psock_path() : shim::on_tracked(fd, s, call);
  return shim::on_tracked(fd, s, call);
}

[[gnu::cold, gnu::noinline]] ssize_t psock_send_one(int fd, const void* buf, size_t len,
                                                    int flags) noexcept {
  iovec iov{const_cast<void*>(buf), len};
  return psock_send(fd, &iov, 1, flags);
}

// A read on a socket with a psock takes its ingress queue first.
ssize_t psock_recv(int fd, msghdr* msg, int flags) noexcept {
  SocketRef s = registry::get(fd);
  PsockRef p = s ? psock_get(s.get()) : PsockRef();
  if (!p) return real::recvmsg(fd, msg, flags);
  return shim::libc_result(
      tcp_bpf_recvmsg(fd, p.get(), msg, flags, s->nonblocking.load(std::memory_order_relaxed)));
}

template <typename Psock, typename Call>
ssize_t socket_recv(int fd, Socket* s, Psock&& psock_path, Call&& call) noexcept {
  if (s) [[likely]] {
    if (has_psock(s)) [[unlikely]]
      return psock_path();
    return shim::on_tracked(fd, s, call);
  }
  return shim::adopt_after(fd, call());
}

template <typename Psock, typename Call>
ssize_t fd_recv(int fd, Socket* s, Psock&& psock_path, Call&& call) noexcept {
  if (!s) [[likely]]
    return call();
  if (has_psock(s)) [[unlikely]]
    return psock_path();
  return shim::on_tracked(fd, s, call);
}

ssize_t psock_recvfrom(int fd, void* buf, size_t len, int flags, sockaddr* from,
                       socklen_t* fromlen) noexcept {
  iovec iov{buf, len};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  m.msg_name = from;
  m.msg_namelen = from && fromlen ? *fromlen : 0;
  ssize_t r = psock_recv(fd, &m, flags);
  if (r >= 0 && from && fromlen) *fromlen = m.msg_namelen;
  return r;
}

msghdr one_iov_msg(iovec* iov, void* buf, size_t len) noexcept {
  iov->iov_base = buf;
  iov->iov_len = len;
  msghdr m{};
  m.msg_iov = iov;
  m.msg_iovlen = 1;
  return m;
}

// do_recvmmsg over the psock's reads: one recvmsg per entry; after the first,
// MSG_WAITFORONE stops waiting and the timeout is checked between entries. An
// error after some entries ends the call with their count.
[[gnu::cold, gnu::noinline]] int psock_recvmmsg(int fd, mmsghdr* vec, unsigned n, int flags,
                                                timespec* timeout) noexcept {
  timespec end{};
  if (timeout) {
    if (timeout->tv_sec < 0 || timeout->tv_nsec < 0 || timeout->tv_nsec >= 1000000000) {
      errno = EINVAL;
      return -1;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += timeout->tv_sec;
    end.tv_nsec += timeout->tv_nsec;
    if (end.tv_nsec >= 1000000000) {
      end.tv_sec += 1;
      end.tv_nsec -= 1000000000;
    }
  }
  const int entry_flags = flags & ~MSG_WAITFORONE;
  unsigned i = 0;
  for (; i < n; ++i) {
    int f = entry_flags | (i > 0 && (flags & MSG_WAITFORONE) ? MSG_DONTWAIT : 0);
    ssize_t r = psock_recv(fd, &vec[i].msg_hdr, f);
    if (r < 0) {
      if (i == 0) return -1;
      break;
    }
    vec[i].msg_len = static_cast<unsigned>(r);
    if (timeout) {
      timespec now{};
      clock_gettime(CLOCK_MONOTONIC, &now);
      if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec)) {
        ++i;
        break;
      }
    }
  }
  return static_cast<int>(i);
}

[[gnu::cold, gnu::noinline]] ssize_t psock_recv_one(int fd, void* buf, size_t len,
                                                    int flags) noexcept {
  iovec iov;
  msghdr m = one_iov_msg(&iov, buf, len);
  return psock_recv(fd, &m, flags);
}

}  // namespace

SOCKSHIM_HOOK ssize_t send(int fd, const void* buf, size_t len, int flags) {
  Socket* s = registry::peek(fd);
  if (pending(s)) [[unlikely]]
    return connecting<::send, real::send, true, 2>(fd, buf, len, flags);
  return socket_send(
      fd, s, [&] { return psock_send_one(fd, buf, len, flags); },
      [&] { return real::send(fd, buf, len, flags); });
}

SOCKSHIM_HOOK ssize_t sendto(int fd, const void* buf, size_t len, int flags, const sockaddr* to,
                             socklen_t tolen) {
  Socket* s = registry::peek(fd);
  if (pending(s)) [[unlikely]]
    return connecting<::sendto, real::sendto, true, 2>(fd, buf, len, flags, to, tolen);
  return socket_send(
      fd, s, [&] { return psock_send_one(fd, buf, len, flags); },
      [&] { return real::sendto(fd, buf, len, flags, to, tolen); });
}

SOCKSHIM_HOOK ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  Socket* s = registry::peek(fd);
  if (pending(s)) [[unlikely]]
    return connecting<::sendmsg, real::sendmsg, true, 1>(fd, msg, flags);
  if (s && msg && tcp_bpf_active(s)) [[unlikely]]
    return psock_send(fd, msg->msg_iov, msg->msg_iovlen, flags);
  return socket_call(fd, s, [&] { return real::sendmsg(fd, msg, flags); });
}

SOCKSHIM_HOOK int sendmmsg(int fd, mmsghdr* vec, unsigned int n, int flags) {
  Socket* s = registry::peek(fd);
  if (pending(s)) [[unlikely]]
    return connecting<::sendmmsg, real::sendmmsg, true, 2>(fd, vec, n, flags);
  if (s && tcp_bpf_active(s)) [[unlikely]] {
    // One verdict path per message; the count of messages sent, or the error
    // of the first.
    unsigned i = 0;
    for (; i < n; ++i) {
      ssize_t r = psock_send(fd, vec[i].msg_hdr.msg_iov, vec[i].msg_hdr.msg_iovlen, flags);
      if (r < 0) return i ? static_cast<int>(i) : -1;
      vec[i].msg_len = static_cast<unsigned>(r);
    }
    return static_cast<int>(i);
  }
  return socket_call(fd, s, [&] { return real::sendmmsg(fd, vec, n, flags); });
}

SOCKSHIM_HOOK ssize_t write(int fd, const void* buf, size_t len) {
  Socket* s = registry::peek(fd);
  if (pending(s)) [[unlikely]]
    return connecting<::write, real::write, true, -1>(fd, buf, len);
  return fd_send(
      fd, s, [&] { return psock_send_one(fd, buf, len, 0); },
      [&] { return real::write(fd, buf, len); });
}

SOCKSHIM_HOOK ssize_t writev(int fd, const iovec* iov, int n) {
  Socket* s = registry::peek(fd);
  if (pending(s)) [[unlikely]]
    return connecting<::writev, real::writev, true, -1>(fd, iov, n);
  return fd_send(
      fd, s, [&] { return psock_send(fd, iov, n < 0 ? 0 : static_cast<size_t>(n), 0); },
      [&] { return real::writev(fd, iov, n); });
}

SOCKSHIM_HOOK ssize_t sendfile(int out, int in, off_t* offset, size_t count) {
  Socket* s = registry::peek(out);
  if (pending(s)) [[unlikely]]
    return connecting<::sendfile, real::sendfile, true, -1>(out, in, offset, count);
  if (s && tcp_bpf_active(s)) [[unlikely]] {
    SocketRef ref = registry::get(out);
    off64_t off = offset ? *offset : 0;
    ssize_t r = ref ? shim::libc_result(
                          tcp_bpf_sendfile(out, ref.get(), in, offset ? &off : nullptr, count))
                    : real::sendfile(out, in, offset, count);
    if (ref && offset) *offset = static_cast<off_t>(off);
    return r;
  }
  return fd_call(out, s, [&] { return real::sendfile(out, in, offset, count); });
}

SOCKSHIM_HOOK ssize_t sendfile64(int out, int in, off64_t* offset, size_t count) {
  Socket* s = registry::peek(out);
  if (pending(s)) [[unlikely]]
    return connecting<::sendfile64, real::sendfile64, true, -1>(out, in, offset, count);
  if (s && tcp_bpf_active(s)) [[unlikely]] {
    if (SocketRef ref = registry::get(out))
      return shim::libc_result(tcp_bpf_sendfile(out, ref.get(), in, offset, count));
  }
  return fd_call(out, s, [&] { return real::sendfile64(out, in, offset, count); });
}

SOCKSHIM_HOOK ssize_t recv(int fd, void* buf, size_t len, int flags) {
  Socket* s = registry::peek(fd);
  if (pending(s)) [[unlikely]]
    return connecting<::recv, real::recv, false, 2>(fd, buf, len, flags);
  return socket_recv(
      fd, s, [&] { return psock_recv_one(fd, buf, len, flags); },
      [&] { return real::recv(fd, buf, len, flags); });
}

SOCKSHIM_HOOK ssize_t recvfrom(int fd, void* buf, size_t len, int flags, sockaddr* from,
                               socklen_t* fromlen) {
  Socket* s = registry::peek(fd);
  if (pending(s)) [[unlikely]]
    return connecting<::recvfrom, real::recvfrom, false, 2>(fd, buf, len, flags, from, fromlen);
  if (s && has_psock(s)) [[unlikely]]
    return psock_recvfrom(fd, buf, len, flags, from, fromlen);
  return socket_call(fd, s, [&] { return real::recvfrom(fd, buf, len, flags, from, fromlen); });
}

SOCKSHIM_HOOK ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  Socket* s = registry::peek(fd);
  if (pending(s)) [[unlikely]]
    return connecting<::recvmsg, real::recvmsg, false, 1>(fd, msg, flags);
  ssize_t r = socket_recv(
      fd, s, [&] { return psock_recv(fd, msg, flags); },
      [&] { return real::recvmsg(fd, msg, flags); });
  if (r >= 0 && msg->msg_controllen) [[unlikely]] {
    ErrnoSaver saved;
    track_passed_fds(msg);
  }
  return r;
}

SOCKSHIM_HOOK int recvmmsg(int fd, mmsghdr* vec, unsigned int n, int flags, timespec* timeout) {
  Socket* s = registry::peek(fd);
  if (pending(s)) [[unlikely]]
    return connecting<::recvmmsg, real::recvmmsg, false, 2>(fd, vec, n, flags, timeout);
  int r = static_cast<int>(socket_recv(
      fd, s, [&] { return psock_recvmmsg(fd, vec, n, flags, timeout); },
      [&] { return real::recvmmsg(fd, vec, n, flags, timeout); }));
  if (r > 0) {
    ErrnoSaver saved;
    for (int i = 0; i < r; ++i) track_passed_fds(&vec[i].msg_hdr);
  }
  return r;
}

SOCKSHIM_HOOK ssize_t read(int fd, void* buf, size_t len) {
  Socket* s = registry::peek(fd);
  if (pending(s)) [[unlikely]]
    return connecting<::read, real::read, false, -1>(fd, buf, len);
  return fd_recv(
      fd, s, [&] { return psock_recv_one(fd, buf, len, 0); },
      [&] { return real::read(fd, buf, len); });
}

SOCKSHIM_HOOK ssize_t readv(int fd, const iovec* iov, int n) {
  auto psock_path = [&] {
    msghdr m{};
    m.msg_iov = const_cast<iovec*>(iov);
    m.msg_iovlen = n < 0 ? 0 : static_cast<size_t>(n);
    return psock_recv(fd, &m, 0);
  };
  Socket* s = registry::peek(fd);
  if (pending(s)) [[unlikely]]
    return connecting<::readv, real::readv, false, -1>(fd, iov, n);
  return fd_recv(fd, s, psock_path, [&] { return real::readv(fd, iov, n); });
}

// The fortified entry points a program built with _FORTIFY_SOURCE calls instead
// of read/recv/recvfrom. The real ones check the buffer size and abort on overflow.
SOCKSHIM_HOOK ssize_t __read_chk(int fd, void* buf, size_t len, size_t buflen) {
  if (len > buflen) return real::__read_chk(fd, buf, len, buflen);
  Socket* s = registry::peek(fd);
  if (pending(s)) [[unlikely]]
    return connecting<::__read_chk, real::__read_chk, false, -1>(fd, buf, len, buflen);
  return fd_recv(
      fd, s, [&] { return psock_recv_one(fd, buf, len, 0); },
      [&] { return real::__read_chk(fd, buf, len, buflen); });
}

SOCKSHIM_HOOK ssize_t __recv_chk(int fd, void* buf, size_t len, size_t buflen, int flags) {
  if (len > buflen) return real::__recv_chk(fd, buf, len, buflen, flags);
  Socket* s = registry::peek(fd);
  if (pending(s)) [[unlikely]]
    return connecting<::__recv_chk, real::__recv_chk, false, 3>(fd, buf, len, buflen, flags);
  return socket_recv(
      fd, s, [&] { return psock_recv_one(fd, buf, len, flags); },
      [&] { return real::__recv_chk(fd, buf, len, buflen, flags); });
}

SOCKSHIM_HOOK ssize_t __recvfrom_chk(int fd, void* buf, size_t len, size_t buflen, int flags,
                                     sockaddr* from, socklen_t* fromlen) {
  Socket* s = registry::peek(fd);
  if (pending(s) && len <= buflen) [[unlikely]]
    return connecting<::__recvfrom_chk, real::__recvfrom_chk, false, 3>(fd, buf, len, buflen, flags,
                                                                        from, fromlen);
  if (s && len <= buflen && has_psock(s)) [[unlikely]]
    return psock_recvfrom(fd, buf, len, flags, from, fromlen);
  return socket_call(
      fd, s, [&] { return real::__recvfrom_chk(fd, buf, len, buflen, flags, from, fromlen); });
}
