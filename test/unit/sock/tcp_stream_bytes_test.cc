// The kernel's counts of a TCP stream (core/sock/tcp_stream_bytes.h): what one
// end wrote is what the other end's readers take, byte for byte, whichever
// end connected, and a FIN is not a byte.
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "core/sock/tcp_stream_bytes.h"
#include "test/support/loopback.h"

using sockshim::tcp_bytes_taken;
using sockshim::tcp_bytes_written;

namespace {

uint64_t written(int fd) {
  uint64_t n = 0;
  REQUIRE(tcp_bytes_written(fd, &n) == 0);
  return n;
}

uint64_t taken(int fd) {
  uint64_t n = 0;
  REQUIRE(tcp_bytes_taken(fd, &n) == 0);
  return n;
}

void send_all(int fd, size_t n) {
  std::vector<char> buf(n, 'x');
  size_t off = 0;
  while (off < n) {
    ssize_t k = send(fd, buf.data() + off, n - off, 0);
    REQUIRE(k > 0);
    off += static_cast<size_t>(k);
  }
}

size_t recv_some(int fd, size_t n) {
  std::vector<char> buf(n);
  size_t got = 0;
  while (got < n) {
    ssize_t k = recv(fd, buf.data() + got, n - got, 0);
    REQUIRE(k >= 0);
    if (k == 0) break;
    got += static_cast<size_t>(k);
  }
  return got;
}

}  // namespace

TEST_CASE("what one end of a TCP connection wrote is what the other end's readers take") {
  test_support::LoopbackPair p;
  REQUIRE(p.connect());
  CHECK(written(p.c) == 0);
  CHECK(written(p.p) == 0);
  CHECK(taken(p.p) == 0);
  send_all(p.c, 100000);  // the end that connected: its SYN is not counted
  send_all(p.p, 7);
  CHECK(written(p.c) == 100000);
  CHECK(written(p.p) == 7);
  REQUIRE(recv_some(p.p, 3000) == 3000);
  CHECK(taken(p.p) == 3000);
  REQUIRE(recv_some(p.c, 7) == 7);
  CHECK(taken(p.c) == 7);

  // The FIN in, 10 bytes still queued: the FIN is not counted as taken.
  REQUIRE(shutdown(p.c, SHUT_WR) == 0);
  pollfd pf{p.p, POLLRDHUP, 0};
  REQUIRE(poll(&pf, 1, 10000) == 1);
  REQUIRE(recv_some(p.p, 100000 - 3000 - 10) == 100000 - 3000 - 10);
  CHECK(taken(p.p) == 100000 - 10);
  REQUIRE(recv_some(p.p, 100) == 10);
  CHECK(taken(p.p) == 100000);
  CHECK(written(p.c) == 100000);
}

TEST_CASE("a socket that is not TCP has no stream counts") {
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  uint64_t n = 0;
  CHECK(tcp_bytes_written(u, &n) < 0);
  CHECK(tcp_bytes_taken(u, &n) < 0);
  close(u);
}
