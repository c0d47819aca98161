// A socket's shared ring file (core/domain/sock_ring.h): one ring per cookie
// that every process of the domain attaches, made 0600, read by whichever
// process reads first, removed by its last watcher; a change a watcher armed
// rings the watchers' bells; a file open to others is refused.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "core/domain/domain.h"
#include "core/domain/sock_ring.h"
#include "test/unit/domain/domain_test_util.h"

using namespace sockshim::domain;
using domain_test::mode_of;
using domain_test::TempDir;

namespace {

bool exists(const std::string& path) {
  return access(path.c_str(), F_OK) == 0;
}

// Runs fn in a fork child; true when it exited 0.
template <typename Fn>
bool in_child(Fn fn) {
  pid_t pid = fork();
  if (pid == 0) _exit(fn() ? 0 : 1);
  int status = 0;
  return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

TEST_CASE("a socket's ring is one file that any process of the domain reads") {
  TempDir dir;
  std::string why;
  Domain* d = Domain::open(dir.path + "/d", "name:ring", &why);
  REQUIRE(d);
  int err = 0;
  SockRing* r = SockRing::attach(*d, 0x1234, 1 << 16, &err);
  REQUIRE(r);
  const std::string file = dir.path + "/d/" + sock_ring_name(0x1234);
  REQUIRE(mode_of(file) == 0600);
  const char msg[] = "queued by the parent";
  REQUIRE(r->ring().append({reinterpret_cast<const uint8_t*>(msg), sizeof msg}) == sizeof msg);

  // A fork child's own attach finds the same ring and takes the bytes: the
  // parent then finds them gone (no copy per process).
  REQUIRE(in_child([&] {
    int e = 0;
    SockRing* c = SockRing::attach(*d, 0x1234, 1 << 16, &e);
    if (!c) return false;
    char buf[64] = {};
    iovec iov{buf, sizeof buf};
    RingRead out;
    bool ok = c->ring().recv(&iov, 1, 0, &out) == 0 && out.copied == sizeof msg &&
              memcmp(buf, msg, sizeof msg) == 0;
    c->detach();  // the parent still watches: the file stays
    return ok && exists(file);
  }));
  REQUIRE_FALSE(r->ring().readable());
  REQUIRE(exists(file));
  r->detach();
  REQUIRE_FALSE(exists(file));
  delete d;
}

TEST_CASE("a ring file open to other users is refused") {
  TempDir dir;
  std::string why;
  Domain* d = Domain::open(dir.path + "/d", "name:ring", &why);
  REQUIRE(d);
  int err = 0;
  SockRing* r = SockRing::attach(*d, 7, 1 << 16, &err);
  REQUIRE(r);
  const std::string file = dir.path + "/d/" + sock_ring_name(7);
  REQUIRE(chmod(file.c_str(), 0644) == 0);
  REQUIRE(in_child([&] {
    int e = 0;
    return SockRing::attach(*d, 7, 1 << 16, &e) == nullptr && e == -EPERM;
  }));
  r->detach();
  delete d;
}

TEST_CASE("an append another process makes rings the watcher's bell") {
  TempDir dir;
  REQUIRE(setenv("SOCKSHIM_DOMAIN", "bells", 1) == 0);
  attach(dir.path, nullptr);
  Domain* d = own_domain();
  REQUIRE(d);
  const int bell = own_ring_bell();
  REQUIRE(bell >= 0);
  REQUIRE(mode_of(d->dir() + "/" + ring_bell_name(getpid())) == 0600);
  int err = 0;
  SockRing* r = SockRing::attach(*d, 42, 1 << 16, &err);
  REQUIRE(r);
  pollfd pf{bell, POLLIN, 0};
  REQUIRE(poll(&pf, 1, 0) == 0);
  // Armed: the child's append rings every watcher's bell, this one's too.
  REQUIRE(r->ring().arm_notify(kNotifyData) == 0);
  REQUIRE(in_child([&] {
    const uint8_t byte = 'x';
    return r->ring().append({&byte, 1}) == 1;
  }));
  REQUIRE(poll(&pf, 1, 5000) == 1);
  drain_bell(bell);
  REQUIRE(poll(&pf, 1, 0) == 0);
  // Not armed again: the next append rings nothing.
  REQUIRE(in_child([&] {
    const uint8_t byte = 'y';
    return r->ring().append({&byte, 1}) == 1;
  }));
  REQUIRE(poll(&pf, 1, 0) == 0);
  REQUIRE(r->ring().queued_bytes() == 2);
  r->detach();
  unsetenv("SOCKSHIM_DOMAIN");
}

namespace {

sockshim::SockAddr ip4(uint16_t port) {
  sockshim::SockAddr a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.addr);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.len = sizeof(sockaddr_in);
  return a;
}

}  // namespace

TEST_CASE("only the socket's TCP peer tells its ring how many bytes it wrote by TCP") {
  TempDir dir;
  std::string why;
  Domain* d = Domain::open(dir.path + "/d", "name:ring", &why);
  REQUIRE(d);
  const sockshim::SockAddr server = ip4(5000), client = ip4(41000), other = ip4(41001);
  int err = 0;
  SockRing* r = SockRing::attach(*d, 9, 1 << 16, &err, &server, &client);
  REQUIRE(r);
  uint64_t told = 0;
  REQUIRE_FALSE(r->tcp_written_before(&told));
  REQUIRE(in_child([&] {
    SockRing* w = SockRing::peer(*d, 9);
    // Another connection's socket, or the ring's own addresses unswapped.
    return w && !w->tell_tcp_written(other, server, 10) &&
           !w->tell_tcp_written(server, client, 10) && w->tell_tcp_written(client, server, 0) &&
           w->tell_tcp_written(client, server, 4096) && w->tell_tcp_written(client, server, 100);
  }));
  // Nothing written is told too (0), and the largest count stays.
  REQUIRE(r->tcp_written_before(&told));
  REQUIRE(told == 4096);
  r->detach();

  // A ring made without addresses has no peer to tell it.
  SockRing* n = SockRing::attach(*d, 10, 1 << 16, &err);
  REQUIRE(n);
  REQUIRE_FALSE(n->tell_tcp_written(client, server, 1));
  n->detach();
  delete d;
}
