// TCP connections over 127.0.0.1 for the conformance suites: one listener on
// an ephemeral port, and pairs connected through it.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace conformance {

inline int loopback_listener() {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a);
  listen(l, 4);
  return l;
}

// *c connected to listener l, *p its accepted end.
inline void loopback_pair(int l, int* c, int* p) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  getsockname(l, reinterpret_cast<sockaddr*>(&a), &len);
  *c = socket(AF_INET, SOCK_STREAM, 0);
  connect(*c, reinterpret_cast<sockaddr*>(&a), sizeof a);
  *p = accept(l, nullptr, nullptr);
}

}  // namespace conformance
