// Datagram sockets read by the receive engine (KERNEL-SEMANTICS.md §7: the
// shim keeps boundaries and sources): one datagram per read with its source,
// MSG_TRUNC, MSG_PEEK, FIONREAD, recvmmsg, and an ingress redirect between
// UDP sockets, each as a plain UDP socket gives them.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "test/unit/recv/recv_test_util.h"

using namespace recv_test;

namespace {

// A UDP socket bound to 127.0.0.1 on a free port.
struct Udp {
  int fd = -1;
  sockaddr_in addr{};
  Udp() {
    fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    REQUIRE(fd >= 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  }
  ~Udp() { ::close(fd); }
  void send_to(const Udp& to, const std::string& s) const {
    REQUIRE(::sendto(fd, s.data(), s.size(), 0, reinterpret_cast<const sockaddr*>(&to.addr),
                     sizeof to.addr) == static_cast<ssize_t>(s.size()));
  }
};

int fionread(int fd) {
  int n = -1;
  REQUIRE(ioctl(fd, FIONREAD, &n) == 0);
  return n;
}

bool readable(int fd, int ms = 3000) {
  pollfd pf{fd, POLLIN, 0};
  return ::poll(&pf, 1, ms) == 1 && (pf.revents & POLLIN);
}

}  // namespace

TEST_CASE("Datagrams: one read each, with the source, FIONREAD the first's size", "[recv][dgram]") {
  load(skb_policy("", kPass));
  Udp server, a, b;
  insert("rx", 0, server.fd);
  a.send_to(server, std::string(300, 'a'));
  REQUIRE(eventually([&] { return rx_counts(server.fd).passed == 300; }));
  b.send_to(server, std::string(20, 'b'));
  REQUIRE(eventually([&] { return rx_counts(server.fd).passed == 320; }));
  CHECK(fionread(server.fd) == 300);
  char buf[1000];
  sockaddr_in from{};
  socklen_t len = sizeof from;
  CHECK(::recvfrom(server.fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len) == 300);
  CHECK(len == sizeof(sockaddr_in));
  CHECK(from.sin_port == a.addr.sin_port);
  CHECK(from.sin_addr.s_addr == a.addr.sin_addr.s_addr);
  CHECK(fionread(server.fd) == 20);
  len = sizeof from;
  CHECK(::recvfrom(server.fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len) == 20);
  CHECK(from.sin_port == b.addr.sin_port);
  CHECK(fionread(server.fd) == 0);
  errno = 0;
  CHECK(::recv(server.fd, buf, sizeof buf, MSG_DONTWAIT) == -1);
  CHECK(errno == EAGAIN);
}

TEST_CASE("Datagrams: MSG_TRUNC, MSG_PEEK and MSG_WAITALL as on a plain UDP socket",
          "[recv][dgram]") {
  load(skb_policy("", kPass));
  Udp server, a;
  insert("rx", 0, server.fd);
  for (const char* s : {"0123456789", "abcdefghij", "ABCDEFGHIJ"}) a.send_to(server, s);
  REQUIRE(eventually([&] { return rx_counts(server.fd).passed == 30; }));
  char buf[64];
  // PEEK leaves it; a short buffer cuts it and says so in msg_flags.
  iovec iov{buf, 4};
  msghdr m{};
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  CHECK(::recvmsg(server.fd, &m, MSG_PEEK) == 4);
  CHECK(m.msg_flags == MSG_TRUNC);
  CHECK(::recvmsg(server.fd, &m, 0) == 4);
  CHECK(m.msg_flags == MSG_TRUNC);
  CHECK(std::string(buf, 4) == "0123");
  // The MSG_TRUNC flag returns the real length; the rest of the datagram is gone.
  CHECK(::recv(server.fd, buf, 3, MSG_TRUNC) == 10);
  CHECK(std::string(buf, 3) == "abc");
  // MSG_WAITALL does not join datagrams.
  CHECK(::recv(server.fd, buf, sizeof buf, MSG_WAITALL) == 10);
  CHECK(std::string(buf, 10) == "ABCDEFGHIJ");
}

TEST_CASE("Datagrams: recvmmsg fills one entry per datagram, each with its source",
          "[recv][dgram]") {
  load(skb_policy("", kPass));
  Udp server, a, b;
  insert("rx", 0, server.fd);
  a.send_to(server, "first");
  REQUIRE(eventually([&] { return rx_counts(server.fd).passed == 5; }));
  b.send_to(server, "second!");
  REQUIRE(eventually([&] { return rx_counts(server.fd).passed == 12; }));
  char bufs[3][32];
  iovec iov[3];
  sockaddr_in names[3]{};
  mmsghdr v[3]{};
  for (int i = 0; i < 3; ++i) {
    iov[i] = {bufs[i], sizeof bufs[i]};
    v[i].msg_hdr.msg_iov = &iov[i];
    v[i].msg_hdr.msg_iovlen = 1;
    v[i].msg_hdr.msg_name = &names[i];
    v[i].msg_hdr.msg_namelen = sizeof names[i];
  }
  REQUIRE(::recvmmsg(server.fd, v, 3, MSG_DONTWAIT, nullptr) == 2);
  CHECK(v[0].msg_len == 5);
  CHECK(std::string(bufs[0], 5) == "first");
  CHECK(names[0].sin_port == a.addr.sin_port);
  CHECK(v[1].msg_len == 7);
  CHECK(std::string(bufs[1], 7) == "second!");
  CHECK(names[1].sin_port == b.addr.sin_port);
}

TEST_CASE("Datagrams: an ingress redirect into another UDP socket arrives as datagrams",
          "[recv][dgram]") {
  load(skb_policy("", kIngressTo0));
  Udp server, target, a;
  // A redirect targets a non-TCP socket only when it is connected.
  REQUIRE(::connect(target.fd, reinterpret_cast<sockaddr*>(&a.addr), sizeof a.addr) == 0);
  insert("redir", 0, target.fd);
  insert("rx", 0, server.fd);
  a.send_to(server, "one");
  a.send_to(server, "two!");
  REQUIRE(eventually([&] { return rx_counts(server.fd).redirected == 7; }));
  REQUIRE(readable(target.fd));
  char buf[16];
  sockaddr_in from{};
  socklen_t len = sizeof from;
  CHECK(::recvfrom(target.fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len) == 3);
  CHECK(from.sin_port == a.addr.sin_port);
  CHECK(::recv(target.fd, buf, sizeof buf, 0) == 4);
  CHECK(std::string(buf, 4) == "two!");
}

TEST_CASE(
    "Datagrams: an sk_msg ingress redirect into a SOCK_DGRAM socketpair end is one "
    "datagram per send, never split by the queue's room",
    "[recv][dgram]") {
  load(msg_policy(
      R"([{"do": [{"redirect": {"map": "redir", "key": 0, "flags": ["BPF_F_INGRESS"]}}]}])"));
  LoopbackPair a;
  REQUIRE(a.connect());
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
  int small = 2304;  // the kernel doubles it: the queue holds 4608 bytes
  REQUIRE(::setsockopt(sv[0], SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
  insert("tx", 0, a.c);
  insert("redir", 0, sv[0]);
  const std::string first(3000, 'x'), second(3000, 'y');
  REQUIRE(::send(a.c, first.data(), first.size(), 0) == 3000);
  // 1608 bytes of room: the datagram waits whole rather than going in cut.
  errno = 0;
  CHECK(::send(a.c, second.data(), second.size(), MSG_DONTWAIT) == -1);
  CHECK(errno == EAGAIN);
  char buf[8192];
  CHECK(::recv(sv[0], buf, sizeof buf, 0) == 3000);
  REQUIRE(::send(a.c, second.data(), second.size(), MSG_DONTWAIT) == 3000);
  CHECK(::recv(sv[0], buf, sizeof buf, 0) == 3000);
  CHECK(std::string(buf, 3000) == second);
  ::close(sv[0]);
  ::close(sv[1]);
}

TEST_CASE("Datagrams: an empty datagram is one 0-byte read with its source, not EOF",
          "[recv][dgram]") {
  load(skb_policy("", kPass));
  Udp server, a;
  insert("rx", 0, server.fd);
  a.send_to(server, "");
  a.send_to(server, "after");
  REQUIRE(eventually([&] { return rx_counts(server.fd).passed == 5; }));
  REQUIRE(readable(server.fd));
  CHECK(fionread(server.fd) == 0);
  char buf[16];
  sockaddr_in from{};
  socklen_t flen = sizeof from;
  CHECK(::recvfrom(server.fd, buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &flen) == 0);
  CHECK(flen == sizeof from);
  CHECK(from.sin_port == a.addr.sin_port);
  CHECK(::recv(server.fd, buf, sizeof buf, 0) == 5);
  a.send_to(server, "more");
  REQUIRE(readable(server.fd));
  CHECK(::recv(server.fd, buf, sizeof buf, 0) == 4);
}

TEST_CASE("Datagrams: an empty datagram redirected into a TCP socket brings it nothing",
          "[recv][dgram]") {
  load(skb_policy("", kIngressTo0));
  Udp server, a;
  LoopbackPair t;
  REQUIRE(t.connect());
  insert("redir", 0, t.p);
  insert("rx", 0, server.fd);
  a.send_to(server, "");
  REQUIRE(eventually([&] { return rx_counts(server.fd).runs == 1; }));
  CHECK_FALSE(readable(t.p, 200));
  a.send_to(server, "ab");
  REQUIRE(eventually([&] { return rx_counts(server.fd).redirected == 2; }));
  REQUIRE(readable(t.p));
  char buf[16];
  CHECK(::recv(t.p, buf, sizeof buf, 0) == 2);
}

TEST_CASE("Datagrams: a unix datagram over 64 KiB is read whole, with no address",
          "[recv][dgram]") {
  load(skb_policy("", kPass));
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
  insert("rx", 0, sv[0]);
  const std::string big = pattern(100000);
  REQUIRE(::send(sv[1], big.data(), big.size(), 0) == 100000);
  REQUIRE(::send(sv[1], "tail", 4, 0) == 4);
  REQUIRE(eventually([&] { return rx_counts(sv[0]).passed == 100004; }));
  std::string got(200000, '\0');
  sockaddr_un from{};
  socklen_t len = sizeof from;
  CHECK(::recvfrom(sv[0], got.data(), got.size(), 0, reinterpret_cast<sockaddr*>(&from), &len) ==
        100000);
  CHECK(len == 0);
  CHECK(got.substr(0, 100000) == big);
  CHECK(::recv(sv[0], got.data(), got.size(), 0) == 4);
  ::close(sv[0]);
  ::close(sv[1]);
}
