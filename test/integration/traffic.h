// Loopback traffic shared by signal_storm.c and fork_threads.c: connected TCP
// pairs and a verified ping-pong that survives EINTR.
#pragma once

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DIE(...)                  \
  do {                            \
    fprintf(stderr, "FAIL: ");    \
    fprintf(stderr, __VA_ARGS__); \
    fprintf(stderr, "\n");        \
    _exit(1);                     \
  } while (0)

static inline int tcp_listen_loopback(struct sockaddr_in* addr) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof *addr;
  if (l < 0 || bind(l, (struct sockaddr*)addr, sizeof *addr) != 0 || listen(l, 64) != 0 ||
      getsockname(l, (struct sockaddr*)addr, &len) != 0)
    DIE("listener: %s", strerror(errno));
  return l;
}

// A connected TCP pair over 127.0.0.1.
static inline void tcp_pair(int fds[2]) {
  struct sockaddr_in addr;
  int l = tcp_listen_loopback(&addr);
  fds[0] = socket(AF_INET, SOCK_STREAM, 0);
  if (fds[0] < 0 || connect(fds[0], (struct sockaddr*)&addr, sizeof addr) != 0)
    DIE("connect: %s", strerror(errno));
  fds[1] = accept(l, NULL, NULL);
  if (fds[1] < 0) DIE("accept: %s", strerror(errno));
  close(l);
}

static inline void send_all(int fd, const char* buf, size_t n) {
  while (n > 0) {
    ssize_t r = send(fd, buf, n, MSG_NOSIGNAL);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) DIE("send on %d: %s", fd, strerror(errno));
    buf += r;
    n -= (size_t)r;
  }
}

static inline void recv_all(int fd, char* buf, size_t n) {
  while (n > 0) {
    ssize_t r = recv(fd, buf, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) DIE("recv on %d: %s", fd, r == 0 ? "end of stream" : strerror(errno));
    buf += r;
    n -= (size_t)r;
  }
}

// One verified round trip of a message stamped with (id, seq): a -> b -> a.
static inline void round_trip(int a, int b, unsigned id, unsigned seq) {
  char out[512], mid[512], back[512];
  for (size_t i = 0; i < sizeof out; ++i) out[i] = (char)(id * 31 + seq * 7 + i);
  send_all(a, out, sizeof out);
  recv_all(b, mid, sizeof mid);
  if (memcmp(out, mid, sizeof out) != 0) DIE("stream %u, round %u: corrupted on the way", id, seq);
  send_all(b, mid, sizeof mid);
  recv_all(a, back, sizeof back);
  if (memcmp(out, back, sizeof out) != 0) DIE("stream %u, round %u: corrupted back", id, seq);
}
