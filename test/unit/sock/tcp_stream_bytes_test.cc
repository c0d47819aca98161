// The kernel's counts of a TCP stream (core/sock/tcp_stream_bytes.h): what one
// end wrote is what the other end's readers take, byte for byte, whichever
// end connected, and a FIN is not a byte.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <vector>

#include "core/sock/tcp_stream_bytes.h"

using sockshim::tcp_bytes_taken;
using sockshim::tcp_bytes_written;

namespace {

struct Pair {
  int client = -1, server = -1;
  Pair() {
    int l = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    REQUIRE(bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(l, 1) == 0);
    REQUIRE(getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    client = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(connect(client, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    server = accept(l, nullptr, nullptr);
    REQUIRE(server >= 0);
    close(l);
  }
  ~Pair() {
    close(client);
    close(server);
  }
};

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
  Pair p;
  CHECK(written(p.client) == 0);
  CHECK(written(p.server) == 0);
  CHECK(taken(p.server) == 0);
  send_all(p.client, 100000);  // the end that connected: its SYN is not counted
  send_all(p.server, 7);
  CHECK(written(p.client) == 100000);
  CHECK(written(p.server) == 7);
  REQUIRE(recv_some(p.server, 3000) == 3000);
  CHECK(taken(p.server) == 3000);
  REQUIRE(recv_some(p.client, 7) == 7);
  CHECK(taken(p.client) == 7);

  // The FIN in, 10 bytes still queued: the FIN is not counted as taken.
  REQUIRE(shutdown(p.client, SHUT_WR) == 0);
  pollfd pf{p.server, POLLRDHUP, 0};
  REQUIRE(poll(&pf, 1, 10000) == 1);
  REQUIRE(recv_some(p.server, 100000 - 3000 - 10) == 100000 - 3000 - 10);
  CHECK(taken(p.server) == 100000 - 10);
  REQUIRE(recv_some(p.server, 100) == 10);
  CHECK(taken(p.server) == 100000);
  CHECK(written(p.client) == 100000);
}

TEST_CASE("a socket that is not TCP has no stream counts") {
  int u = socket(AF_INET, SOCK_DGRAM, 0);
  uint64_t n = 0;
  CHECK(tcp_bytes_written(u, &n) < 0);
  CHECK(tcp_bytes_taken(u, &n) < 0);
  close(u);
}
