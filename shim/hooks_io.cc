// Data hooks: the send and receive families, read/write on sockets, sendfile.
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "shim/hook.h"

using namespace sockshim;

namespace {

// A call only a socket accepts: an untracked fd that answers it is a socket the
// shim never saw (made before it loaded, inherited over exec): adopt it.
template <typename Call>
auto socket_call(int fd, Call&& call) noexcept {
  Socket* s = registry::peek(fd);
  if (s) [[likely]]
    return shim::on_tracked(fd, s, call);
  auto r = call();
  if (r >= 0) shim::adopt_after(fd);
  return r;
}

// A call any fd accepts (read, write): untracked fds go straight through.
template <typename Call>
auto fd_call(int fd, Call&& call) noexcept {
  Socket* s = registry::peek(fd);
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

}  // namespace

SOCKSHIM_HOOK ssize_t send(int fd, const void* buf, size_t len, int flags) {
  return socket_call(fd, [&] { return real::send(fd, buf, len, flags); });
}

SOCKSHIM_HOOK ssize_t sendto(int fd, const void* buf, size_t len, int flags, const sockaddr* to,
                             socklen_t tolen) {
  return socket_call(fd, [&] { return real::sendto(fd, buf, len, flags, to, tolen); });
}

SOCKSHIM_HOOK ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  return socket_call(fd, [&] { return real::sendmsg(fd, msg, flags); });
}

SOCKSHIM_HOOK int sendmmsg(int fd, mmsghdr* vec, unsigned int n, int flags) {
  return socket_call(fd, [&] { return real::sendmmsg(fd, vec, n, flags); });
}

SOCKSHIM_HOOK ssize_t write(int fd, const void* buf, size_t len) {
  return fd_call(fd, [&] { return real::write(fd, buf, len); });
}

SOCKSHIM_HOOK ssize_t writev(int fd, const iovec* iov, int n) {
  return fd_call(fd, [&] { return real::writev(fd, iov, n); });
}

SOCKSHIM_HOOK ssize_t sendfile(int out, int in, off_t* offset, size_t count) {
  return fd_call(out, [&] { return real::sendfile(out, in, offset, count); });
}

SOCKSHIM_HOOK ssize_t sendfile64(int out, int in, off64_t* offset, size_t count) {
  return fd_call(out, [&] { return real::sendfile64(out, in, offset, count); });
}

SOCKSHIM_HOOK ssize_t recv(int fd, void* buf, size_t len, int flags) {
  return socket_call(fd, [&] { return real::recv(fd, buf, len, flags); });
}

SOCKSHIM_HOOK ssize_t recvfrom(int fd, void* buf, size_t len, int flags, sockaddr* from,
                               socklen_t* fromlen) {
  return socket_call(fd, [&] { return real::recvfrom(fd, buf, len, flags, from, fromlen); });
}

SOCKSHIM_HOOK ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  ssize_t r = socket_call(fd, [&] { return real::recvmsg(fd, msg, flags); });
  if (r >= 0 && msg->msg_controllen) [[unlikely]] {
    int saved = errno;
    track_passed_fds(msg);
    errno = saved;
  }
  return r;
}

SOCKSHIM_HOOK int recvmmsg(int fd, mmsghdr* vec, unsigned int n, int flags, timespec* timeout) {
  int r = socket_call(fd, [&] { return real::recvmmsg(fd, vec, n, flags, timeout); });
  if (r > 0) {
    int saved = errno;
    for (int i = 0; i < r; ++i) track_passed_fds(&vec[i].msg_hdr);
    errno = saved;
  }
  return r;
}

SOCKSHIM_HOOK ssize_t read(int fd, void* buf, size_t len) {
  return fd_call(fd, [&] { return real::read(fd, buf, len); });
}

SOCKSHIM_HOOK ssize_t readv(int fd, const iovec* iov, int n) {
  return fd_call(fd, [&] { return real::readv(fd, iov, n); });
}

// The fortified entry points a program built with _FORTIFY_SOURCE calls instead
// of read/recv/recvfrom. The real ones check the buffer size and abort on overflow.
SOCKSHIM_HOOK ssize_t __read_chk(int fd, void* buf, size_t len, size_t buflen) {
  return fd_call(fd, [&] { return real::__read_chk(fd, buf, len, buflen); });
}

SOCKSHIM_HOOK ssize_t __recv_chk(int fd, void* buf, size_t len, size_t buflen, int flags) {
  return socket_call(fd, [&] { return real::__recv_chk(fd, buf, len, buflen, flags); });
}

SOCKSHIM_HOOK ssize_t __recvfrom_chk(int fd, void* buf, size_t len, size_t buflen, int flags,
                                     sockaddr* from, socklen_t* fromlen) {
  return socket_call(
      fd, [&] { return real::__recvfrom_chk(fd, buf, len, buflen, flags, from, fromlen); });
}
