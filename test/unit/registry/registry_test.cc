// The socket registry as the hooks drive it. This binary contains the shim's hook
// objects, so every socket(), dup(), close() below goes through the real hooks
// (as a preloaded libsockshim.so would take them) and the test can look at the
// registry those hooks keep.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "core/sock/registry.h"
#include "core/sock/socket.h"
#include "core/sock/socket_pool.h"
#include "core/sock/tcp_connect.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

using namespace sockshim;

namespace {

Socket* record(int fd) {
  return registry::peek(fd);
}

uint64_t kernel_cookie(int fd) {
  uint64_t cookie = 0;
  socklen_t len = sizeof cookie;
  REQUIRE(getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) == 0);
  return cookie;
}

// A close the shim cannot see: straight to the kernel.
long raw_close(int fd) {
  long r;
  __asm__ volatile("syscall"
                   : "=a"(r)
                   : "0"(static_cast<long>(SYS_close)), "D"(static_cast<long>(fd))
                   : "rcx", "r11", "memory");
  return r;
}

long raw_socket(int domain, int type) {
  long r;
  __asm__ volatile("syscall"
                   : "=a"(r)
                   : "0"(static_cast<long>(SYS_socket)), "D"(static_cast<long>(domain)),
                     "S"(static_cast<long>(type)), "d"(0L)
                   : "rcx", "r11", "memory");
  return r;
}

int exit_status(pid_t pid) {
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct Listener {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  Listener() {
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(listen(fd, 16) == 0);
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  }
  ~Listener() { close(fd); }
  int connect_client() const {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(connect(c, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    return c;
  }
};

}  // namespace

TEST_CASE("socket() records family, type, protocol, cookie and flags", "[registry]") {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  Socket* s = record(fd);
  REQUIRE(s != nullptr);
  CHECK(s->family == AF_INET);
  CHECK(s->type == SOCK_STREAM);
  CHECK(s->cookie == kernel_cookie(fd));
  CHECK(s->cookie != 0);
  CHECK(s->nonblocking.load());
  CHECK(s->refs() == 1);

  CHECK(fcntl(fd, F_SETFL, 0) == 0);
  CHECK_FALSE(s->nonblocking.load());
  int on = 1;
  CHECK(ioctl(fd, FIONBIO, &on) == 0);
  CHECK(s->nonblocking.load());

  CHECK(close(fd) == 0);
  CHECK(record(fd) == nullptr);
}

TEST_CASE("socketpair and accept4 record both ends", "[registry]") {
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  REQUIRE(record(sv[0]) != nullptr);
  REQUIRE(record(sv[1]) != nullptr);
  CHECK(record(sv[0]) != record(sv[1]));
  CHECK(record(sv[0])->family == AF_UNIX);
  CHECK(record(sv[0])->cookie == kernel_cookie(sv[0]));
  CHECK(record(sv[1])->cookie == kernel_cookie(sv[1]));
  close(sv[0]);
  close(sv[1]);

  Listener l;
  int c = l.connect_client();
  int a = accept4(l.fd, nullptr, nullptr, SOCK_NONBLOCK);
  REQUIRE(a >= 0);
  REQUIRE(record(a) != nullptr);
  CHECK(record(a)->cookie == kernel_cookie(a));
  CHECK(record(a)->nonblocking.load());
  CHECK(record(a)->state == TcpState::established);
  CHECK(record(c)->state == TcpState::established);
  CHECK(record(l.fd)->state == TcpState::listen);
  close(a);
  close(c);
}

TEST_CASE("a non-blocking connect stays pending until a call notices its end", "[registry]") {
  Listener l;
  const int before = g_connects_pending.load();
  auto start = [&] {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    REQUIRE(connect(c, reinterpret_cast<const sockaddr*>(&l.addr), sizeof l.addr) == -1);
    REQUIRE(errno == EINPROGRESS);
    REQUIRE(tcp_connect_pending(record(c)));
    return c;
  };

  // The handshake ends in the kernel; nothing asked: still pending. getpeername
  // notices it and answers as the kernel does.
  int c = start();
  CHECK(g_connects_pending.load() == before + 1);
  int a = accept(l.fd, nullptr, nullptr);
  REQUIRE(a >= 0);
  CHECK(tcp_connect_pending(record(c)));
  CHECK(record(c)->state == TcpState::syn_sent);
  sockaddr_in peer{};
  socklen_t len = sizeof peer;
  CHECK(getpeername(c, reinterpret_cast<sockaddr*>(&peer), &len) == 0);
  CHECK(peer.sin_port == l.addr.sin_port);
  CHECK_FALSE(tcp_connect_pending(record(c)));
  CHECK(record(c)->state == TcpState::established);
  CHECK(g_connects_pending.load() == before);
  close(a);
  close(c);

  // Closed while pending: it no longer counts.
  c = start();
  close(c);
  CHECK(g_connects_pending.load() == before);

  // Closed behind the shim's back: the scan an epoll wait makes drops it.
  c = start();
  REQUIRE(raw_close(c) == 0);
  tcp_finish_connects();
  CHECK(record(c) == nullptr);
  CHECK(g_connects_pending.load() == before);
  REQUIRE(fcntl(l.fd, F_SETFL, O_NONBLOCK) == 0);
  while ((a = accept(l.fd, nullptr, nullptr)) >= 0) close(a);
}

TEST_CASE("a dup chain shares one record, released with the last fd", "[registry]") {
  const registry::Census before = registry::census();
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  Socket* s = record(fd);
  REQUIRE(s != nullptr);

  int d1 = dup(fd);
  int d2 = dup2(d1, 200);
  int d3 = dup3(d2, 201, O_CLOEXEC);
  int d4 = fcntl(d3, F_DUPFD, 300);
  int d5 = fcntl(d4, F_DUPFD_CLOEXEC, 300);
  int d6 = static_cast<int>(syscall(SYS_dup3, d5, 400, 0));
  REQUIRE(d2 == 200);
  REQUIRE(d3 == 201);
  REQUIRE(d4 == 300);
  REQUIRE(d5 == 301);
  REQUIRE(d6 == 400);
  for (int d : {d1, d2, d3, d4, d5, d6}) CHECK(record(d) == s);
  CHECK(s->refs() == 7);
  registry::Census during = registry::census();
  CHECK(during.fds == before.fds + 7);
  CHECK(during.sockets == before.sockets + 1);

  SECTION("closing one dup keeps the socket for the others") {
    CHECK(close(d3) == 0);
    CHECK(record(d3) == nullptr);
    CHECK(record(fd) == s);
    CHECK(s->refs() == 6);
    CHECK(close(fd) == 0);
    CHECK(record(d1) == s);
    CHECK(s->refs() == 5);
    CHECK(send(d1, "x", 1, 0) == -1);  // unconnected UDP: the socket is alive
    CHECK(errno == EDESTADDRREQ);
    CHECK(record(d1) == s);
    for (int d : {d1, d2, d4, d5}) CHECK(close(d) == 0);
    CHECK(s->refs() == 1);
    CHECK(syscall(SYS_close, d6) == 0);
    CHECK(record(d6) == nullptr);
  }
  SECTION("close_range closes a block of them, CLOSE_RANGE_CLOEXEC closes none") {
    CHECK(close_range(300, 400, CLOSE_RANGE_CLOEXEC) == 0);
    CHECK(record(d4) == s);
    CHECK(s->refs() == 7);
    CHECK(close_range(200, 400, 0) == 0);
    for (int d : {d2, d3, d4, d5, d6}) CHECK(record(d) == nullptr);
    CHECK(fcntl(d4, F_GETFD) == -1);
    CHECK(s->refs() == 2);
    CHECK(syscall(SYS_close_range, d1, d1, 0) == 0);
    CHECK(record(d1) == nullptr);
    CHECK(s->refs() == 1);
    CHECK(close(fd) == 0);
  }
  SECTION("dup2 over a dup replaces it") {
    int other = socket(AF_INET, SOCK_STREAM, 0);
    Socket* o = record(other);
    CHECK(dup2(other, d2) == d2);
    CHECK(record(d2) == o);
    CHECK(s->refs() == 6);
    CHECK(o->refs() == 2);
    int file = open("/dev/null", O_RDONLY);
    CHECK(dup2(file, d3) == d3);
    CHECK(record(d3) == nullptr);
    CHECK(s->refs() == 5);
    for (int d : {fd, d1, d2, d3, d4, d5, d6, other, file}) close(d);
  }
  CHECK(registry::census().fds == before.fds);
  CHECK(registry::census().sockets == before.sockets);
}

TEST_CASE("closefrom forgets every socket at or above its bound", "[registry]") {
  // In a child, so the test runner's own fds survive.
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(10);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int high = dup2(fd, 500);
    int top = fcntl(fd, F_DUPFD, 900);
    bool ok = record(high) == record(fd) && record(top) == record(fd);
    closefrom(high);
    ok = ok && record(high) == nullptr && record(top) == nullptr && record(fd) != nullptr &&
         record(fd)->refs() == 1;
    closefrom(3);
    ok = ok && registry::census().fds == 0;
    _exit(ok ? 0 : 1);
  }
  REQUIRE(pid > 0);
  CHECK(exit_status(pid) == 0);
}

TEST_CASE("fork: the child's copies are its own", "[registry][fork]") {
  Listener l;
  int c = l.connect_client();
  int a = accept(l.fd, nullptr, nullptr);
  Socket* s = record(c);
  REQUIRE(s != nullptr);
  uint32_t refs = s->refs();
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(10);
    bool ok = record(c) == s && s->cookie == kernel_cookie(c);
    ok = ok && send(c, "child", 5, 0) == 5;
    ok = ok && close(c) == 0 && record(c) == nullptr;
    int fresh = socket(AF_INET, SOCK_STREAM, 0);
    ok = ok && record(fresh) != nullptr && record(fresh)->cookie == kernel_cookie(fresh);
    _exit(ok ? 0 : 1);
  }
  REQUIRE(pid > 0);
  CHECK(exit_status(pid) == 0);
  CHECK(record(c) == s);
  CHECK(s->refs() == refs);
  char buf[8];
  CHECK(recv(a, buf, 5, MSG_WAITALL) == 5);
  CHECK(send(c, "parent", 6, 0) == 6);
  close(a);
  close(c);
}

TEST_CASE("fork while another thread holds a socket's lock", "[registry][fork]") {
  Listener l;
  int c = socket(AF_INET, SOCK_STREAM, 0);
  Socket* s = record(c);
  REQUIRE(s != nullptr);
  std::atomic<int> phase{0};
  std::thread holder([&] {
    std::lock_guard g(s->lock());
    phase = 1;
    while (phase.load() != 2) std::this_thread::yield();
  });
  while (phase.load() != 1) std::this_thread::yield();
  fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(5);  // a lock inherited held would hang connect(): fail by SIGALRM instead
    bool ok = connect(c, reinterpret_cast<const sockaddr*>(&l.addr), sizeof l.addr) == 0 &&
              record(c)->state == TcpState::established;
    _exit(ok ? 0 : 1);
  }
  phase = 2;
  holder.join();
  REQUIRE(pid > 0);
  CHECK(exit_status(pid) == 0);
  close(c);
}

TEST_CASE("a vfork child changes nothing in its parent's registry", "[registry][fork]") {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  int d = dup(fd);
  Socket* s = record(fd);
  REQUIRE(s != nullptr);
  pid_t pid = vfork();
  if (pid == 0) {
    // posix_spawn's file actions do this between vfork and exec.
    close(fd);
    dup2(d, 600);
    _exit(0);
  }
  REQUIRE(pid > 0);
  CHECK(exit_status(pid) == 0);
  CHECK(record(fd) == s);
  CHECK(record(d) == s);
  CHECK(record(600) == nullptr);
  CHECK(s->refs() == 2);
  close(fd);
  close(d);
}

TEST_CASE("sockets the shim never saw are adopted on first use", "[registry]") {
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
  int hidden = static_cast<int>(raw_socket(AF_INET, SOCK_DGRAM));
  REQUIRE(hidden >= 0);
  CHECK(record(hidden) == nullptr);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(9);  // discard; nothing need listen for UDP to be sent
  CHECK(sendto(hidden, "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) == 1);
  REQUIRE(record(hidden) != nullptr);
  CHECK(record(hidden)->family == AF_INET);
  CHECK(record(hidden)->type == SOCK_DGRAM);
  CHECK(record(hidden)->cookie == kernel_cookie(hidden));

  SECTION("received with SCM_RIGHTS") {
    int passed = static_cast<int>(raw_socket(AF_INET, SOCK_STREAM));
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    char byte = 'F';
    iovec iov{&byte, 1};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &passed, sizeof passed);
    REQUIRE(sendmsg(sv[0], &msg, 0) == 1);
    raw_close(passed);
    memset(control, 0, sizeof control);
    REQUIRE(recvmsg(sv[1], &msg, 0) == 1);
    int got = -1;
    memcpy(&got, CMSG_DATA(CMSG_FIRSTHDR(&msg)), sizeof got);
    REQUIRE(got >= 0);
    REQUIRE(record(got) != nullptr);
    CHECK(record(got)->type == SOCK_STREAM);
    CHECK(record(got)->cookie == kernel_cookie(got));
    close(got);
  }
  SECTION("closed behind the shim's back: EBADF, then ENOTSOCK, evicts") {
    Socket* s = record(hidden);
    REQUIRE(raw_close(hidden) == 0);
    CHECK(record(hidden) == s);
    CHECK(send(hidden, "x", 1, 0) == -1);
    CHECK(errno == EBADF);
    CHECK(record(hidden) == nullptr);
    int again = static_cast<int>(raw_socket(AF_INET, SOCK_DGRAM));
    REQUIRE(again == hidden);
    CHECK(sendto(again, "x", 1, 0, reinterpret_cast<sockaddr*>(&to), sizeof to) == 1);
    REQUIRE(raw_close(again) == 0);
    int file = open("/dev/null", O_RDONLY);
    REQUIRE(file == hidden);
    CHECK(record(file) != nullptr);
    CHECK(recv(file, &to, 1, 0) == -1);
    CHECK(errno == ENOTSOCK);
    CHECK(record(file) == nullptr);
    hidden = file;
  }
  close(hidden);
  close(sv[0]);
  close(sv[1]);
}

TEST_CASE("records are recycled, not leaked", "[registry]") {
  const registry::Census before = registry::census();
  for (int i = 0; i < 5000; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    int d = dup(fd);
    close(fd);
    close(d);
  }
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(record(fd)->refs() == 1);
  close(fd);
  CHECK(registry::census().fds == before.fds);
  CHECK(registry::census().sockets == before.sockets);
  CHECK(SocketPool::slab_count() <= 2);
}
