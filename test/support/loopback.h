// Socket pairs for the C++ suites: TCP over 127.0.0.1 and AF_UNIX. Nothing
// here asserts: a failure leaves -1 (errno set) for the caller to check.
#pragma once

#include <sys/socket.h>

namespace test_support {

// A listening TCP socket on an ephemeral port of 127.0.0.1, or -1.
int loopback_listener();

// A connected TCP pair on 127.0.0.1: c the connecting end, p the end the
// listener accepted. Closes the ends it still holds (-1: none).
struct LoopbackPair {
  int c = -1, p = -1;
  LoopbackPair() = default;
  ~LoopbackPair();
  LoopbackPair(const LoopbackPair&) = delete;
  LoopbackPair& operator=(const LoopbackPair&) = delete;
  // Connects through listener (left open), or through one of its own when
  // -1. False, errno set, when a step fails.
  bool connect(int listener = -1);
};

// An AF_UNIX socketpair of type; a and b are -1 if it failed.
struct UnixPair {
  int a = -1, b = -1;
  explicit UnixPair(int type = SOCK_STREAM);
  ~UnixPair();
  UnixPair(const UnixPair&) = delete;
  UnixPair& operator=(const UnixPair&) = delete;
};

// Bytes the kernel holds unread at the other end of fd, a connected TCP
// socket on 127.0.0.1 (its rx_queue in /proc/net/tcp), or -1 when that end
// is not found: for an end this process cannot ask, one it closed that a
// child still reads.
long peer_rx_queue(int fd);

}  // namespace test_support
