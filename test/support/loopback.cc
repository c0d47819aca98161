#include "test/support/loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <initializer_list>

namespace test_support {
namespace {

int port_of(int fd, bool peer) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  auto* sa = reinterpret_cast<sockaddr*>(&a);
  if ((peer ? getpeername(fd, sa, &len) : getsockname(fd, sa, &len)) != 0) return -1;
  return ntohs(a.sin_port);
}

void close_keeping_errno(int fd) {
  const int saved = errno;
  if (fd >= 0) ::close(fd);
  errno = saved;
}

}  // namespace

int loopback_listener() {
  int l = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (l >= 0 && ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(l, 16) == 0)
    return l;
  close_keeping_errno(l);
  return -1;
}

LoopbackPair::~LoopbackPair() {
  for (int fd : {c, p})
    if (fd >= 0) ::close(fd);
}

bool LoopbackPair::connect(int listener) {
  const int own = listener < 0 ? loopback_listener() : -1;
  const int l = listener < 0 ? own : listener;
  sockaddr_in a{};
  socklen_t len = sizeof a;
  bool ok = l >= 0 && getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  if (ok) c = ::socket(AF_INET, SOCK_STREAM, 0);
  ok = ok && c >= 0 && ::connect(c, reinterpret_cast<sockaddr*>(&a), len) == 0;
  if (ok) p = ::accept(l, nullptr, nullptr);
  close_keeping_errno(own);
  return ok && p >= 0;
}

UnixPair::UnixPair(int type) {
  int sv[2];
  if (socketpair(AF_UNIX, type, 0, sv) == 0) {
    a = sv[0];
    b = sv[1];
  }
}

UnixPair::~UnixPair() {
  for (int fd : {a, b})
    if (fd >= 0) ::close(fd);
}

long peer_rx_queue(int fd) {
  const int local = port_of(fd, true), remote = port_of(fd, false);
  FILE* f = local < 0 || remote < 0 ? nullptr : std::fopen("/proc/net/tcp", "r");
  if (!f) return -1;
  char line[512];
  long found = -1;
  // The first line is the header, which does not scan.
  while (found < 0 && std::fgets(line, sizeof line, f)) {
    // "sl: local_addr:port rem_addr:port st tx_queue:rx_queue ..." in hex.
    unsigned lport, rport, st;
    unsigned long tx, rx;
    if (std::sscanf(line, " %*u: %*x:%x %*x:%x %x %lx:%lx", &lport, &rport, &st, &tx, &rx) == 5 &&
        static_cast<int>(lport) == local && static_cast<int>(rport) == remote)
      found = static_cast<long>(rx);
  }
  std::fclose(f);
  return found;
}

}  // namespace test_support
