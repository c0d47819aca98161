// The loads the shim benchmark measures, one per run, over 127.0.0.1 TCP:
//
//   shim_bench pingpong ROUNDS   1-byte ping-pong between two threads; prints
//                                round trips per second
//   shim_bench stream MBYTES     64 KiB sends from one thread to another; prints MB/s
//   shim_bench calls ROUNDS      one thread, a connection to itself, ROUNDS x
//                                (send, recv, send, recv) of 1 byte; for callgrind
//   shim_bench calls-mt ROUNDS   the same with an idle second thread, as in any
//                                threaded program: glibc then takes its
//                                cancellation path on every call, with or without
//                                the shim
//
// bench_shim.py runs it with and without the shim; callgrind_calls.py counts
// the instructions per call of the third form.
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DIE(what) \
  do {            \
    perror(what); \
    exit(1);      \
  } while (0)

enum { kChunk = 64 * 1024 };

static void connected_pair(int fds[2]) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int l = socket(AF_INET, SOCK_STREAM, 0);
  if (l < 0 || bind(l, (struct sockaddr*)&a, sizeof a) || listen(l, 1) ||
      getsockname(l, (struct sockaddr*)&a, &len))
    DIE("listen");
  fds[0] = socket(AF_INET, SOCK_STREAM, 0);
  if (fds[0] < 0 || connect(fds[0], (struct sockaddr*)&a, sizeof a)) DIE("connect");
  fds[1] = accept(l, NULL, NULL);
  if (fds[1] < 0) DIE("accept");
  close(l);
  int one = 1;
  setsockopt(fds[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(fds[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void exact_recv(int fd, char* buf, size_t n) {
  while (n > 0) {
    ssize_t r = recv(fd, buf, n, 0);
    if (r <= 0) DIE("recv");
    buf += r;
    n -= (size_t)r;
  }
}

struct job {
  int fd;
  long count;
};

static void* echo_bytes(void* arg) {
  struct job* j = arg;
  char c;
  for (long i = 0; i < j->count; ++i) {
    exact_recv(j->fd, &c, 1);
    if (send(j->fd, &c, 1, 0) != 1) DIE("send");
  }
  return NULL;
}

static void* drain(void* arg) {
  struct job* j = arg;
  static char buf[kChunk];
  long total = 0;
  while (total < j->count) {
    ssize_t r = recv(j->fd, buf, sizeof buf, 0);
    if (r <= 0) DIE("recv");
    total += r;
  }
  return NULL;
}

static void pingpong(long rounds) {
  int fds[2];
  connected_pair(fds);
  struct job j = {fds[1], rounds};
  pthread_t t;
  pthread_create(&t, NULL, echo_bytes, &j);
  char c = 'x';
  double start = now();
  for (long i = 0; i < rounds; ++i) {
    if (send(fds[0], &c, 1, 0) != 1) DIE("send");
    exact_recv(fds[0], &c, 1);
  }
  double elapsed = now() - start;
  pthread_join(t, NULL);
  printf("%.0f\n", (double)rounds / elapsed);
}

static void stream(long mbytes) {
  int fds[2];
  connected_pair(fds);
  long total = mbytes * 1024 * 1024;
  struct job j = {fds[1], total};
  pthread_t t;
  static char buf[kChunk];
  memset(buf, 'y', sizeof buf);
  double start = now();
  pthread_create(&t, NULL, drain, &j);
  for (long sent = 0; sent < total;) {
    ssize_t r = send(fds[0], buf, sizeof buf, 0);
    if (r <= 0) DIE("send");
    sent += r;
  }
  pthread_join(t, NULL);
  double elapsed = now() - start;
  printf("%.1f\n", (double)mbytes / elapsed);
}

static void calls(long rounds) {
  int fds[2];
  connected_pair(fds);
  char c = 'z';
  for (long i = 0; i < rounds; ++i) {
    if (send(fds[0], &c, 1, 0) != 1 || recv(fds[1], &c, 1, 0) != 1 || send(fds[1], &c, 1, 0) != 1 ||
        recv(fds[0], &c, 1, 0) != 1)
      DIE("calls");
  }
}

static void* idle(void* arg) {
  (void)arg;
  pause();
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s pingpong ROUNDS | stream MBYTES | calls[-mt] ROUNDS\n", argv[0]);
    return 2;
  }
  long n = atol(argv[2]);
  if (strcmp(argv[1], "pingpong") == 0)
    pingpong(n);
  else if (strcmp(argv[1], "stream") == 0)
    stream(n);
  else if (strcmp(argv[1], "calls") == 0)
    calls(n);
  else if (strcmp(argv[1], "calls-mt") == 0) {
    pthread_t t;
    pthread_create(&t, NULL, idle, NULL);
    calls(n);
  } else
    return 2;
  return 0;
}
