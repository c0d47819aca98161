#include "test/support/loopback.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>

namespace test_support {
namespace {

int port_of(int fd, bool peer) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  auto* sa = reinterpret_cast<sockaddr*>(&a);
  if ((peer ? getpeername(fd, sa, &len) : getsockname(fd, sa, &len)) != 0) return -1;
  return ntohs(a.sin_port);
}

}  // namespace

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
