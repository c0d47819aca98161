/* Edges of a socket read by the receive engine, as a plain socket has them:
 * an empty UDP datagram (one 0-byte read with its source; poll, recvmmsg),
 * and shutdown(SHUT_RD) on a UDP socket and on a TCP socket with a stream
 * parser (a blocked recv returns 0, poll reports POLLIN|POLLRDHUP, later
 * reads give 0, a UDP datagram sent afterwards is still read).
 *
 * Under the shim (dgram_edges.json) the probe puts its sockets in the maps
 * with the C API, found with dlsym so the same binary runs without the shim.
 * It prints one line per observation; test_dgram_edges.py runs it with and
 * without the shim and compares. Exits 1 when a wait runs out. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define TIMEOUT_MS 5000

typedef int (*map_update_fn)(const char*, const void*, const void*, uint64_t);

static void die(const char* what) {
  printf("FAIL: %s (%s)\n", what, strerror(errno));
  exit(1);
}

/* Puts fd in map[0] when the shim is there. */
static void insert(const char* map, int fd) {
  map_update_fn update;
  *(void**)&update = dlsym(RTLD_DEFAULT, "sockshim_map_update_elem"); /* POSIX's idiom */
  if (!update && getenv("SOCKSHIM_POLICY")) {
    errno = ENOENT;
    die("sockshim_map_update_elem under a policy");
  }
  if (!update) return;
  uint32_t key = 0;
  uint64_t value = (uint64_t)fd;
  int r = update(map, &key, &value, 0);
  if (r != 0) {
    errno = -r;
    die("sockshim_map_update_elem");
  }
}

static int udp_bound(struct sockaddr_in* addr) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) die("socket");
  memset(addr, 0, sizeof *addr);
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof *addr;
  if (bind(fd, (struct sockaddr*)addr, sizeof *addr) != 0 ||
      getsockname(fd, (struct sockaddr*)addr, &len) != 0)
    die("bind");
  return fd;
}

static void send_to(int fd, const char* s, const struct sockaddr_in* to) {
  if (sendto(fd, s, strlen(s), 0, (const struct sockaddr*)to, sizeof *to) != (ssize_t)strlen(s))
    die("sendto");
}

static const char* from_name(const struct sockaddr_in* from, socklen_t len,
                             const struct sockaddr_in* client) {
  if (len != sizeof *from) return "no address";
  return from->sin_port == client->sin_port && from->sin_addr.s_addr == client->sin_addr.s_addr
             ? "the client"
             : "another address";
}

static const char* revents_name(short ev) {
  static char buf[64];
  buf[0] = 0;
  if (ev & POLLIN) strcat(buf, "IN ");
  if (ev & POLLRDHUP) strcat(buf, "RDHUP ");
  if (ev & POLLHUP) strcat(buf, "HUP ");
  if (ev & POLLERR) strcat(buf, "ERR ");
  if (!buf[0]) strcat(buf, "none ");
  buf[strlen(buf) - 1] = 0;
  return buf;
}

static short poll_one(int fd, short events, int ms) {
  struct pollfd p = {fd, events, 0};
  int n = poll(&p, 1, ms);
  if (n < 0) die("poll");
  return n ? p.revents : 0;
}

static const char* result(ssize_t r) {
  static char buf[64];
  if (r < 0)
    snprintf(buf, sizeof buf, "-1 %s", errno == EAGAIN ? "EAGAIN" : strerror(errno));
  else
    snprintf(buf, sizeof buf, "%zd", r);
  return buf;
}

/* A thread blocked in recv(fd). */
struct blocked {
  int fd;
  pthread_t thread;
  pid_t tid;
  ssize_t r;
  int err;
};

static void* blocked_recv(void* arg) {
  struct blocked* b = arg;
  char buf[64];
  __atomic_store_n(&b->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
  b->r = recv(b->fd, buf, sizeof buf, 0);
  b->err = errno;
  return NULL;
}

/* Starts a reader and returns once it sleeps (in recv, or in the shim's wait). */
static void start_blocked(struct blocked* b, int fd) {
  b->fd = fd;
  b->tid = 0;
  if (pthread_create(&b->thread, NULL, blocked_recv, b) != 0) die("pthread_create");
  for (int i = 0; i < TIMEOUT_MS; ++i) {
    pid_t tid = __atomic_load_n(&b->tid, __ATOMIC_ACQUIRE);
    if (tid) {
      char path[64], stat[512];
      snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
      FILE* f = fopen(path, "re");
      size_t n = f ? fread(stat, 1, sizeof stat - 1, f) : 0;
      if (f) fclose(f);
      stat[n] = 0;
      const char* state = strrchr(stat, ')');
      if (state && state[1] == ' ' && state[2] == 'S') return;
    }
    usleep(1000);
  }
  errno = ETIMEDOUT;
  die("the reader never blocked");
}

static ssize_t join_blocked(struct blocked* b) {
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += TIMEOUT_MS / 1000;
  if (pthread_timedjoin_np(b->thread, NULL, &until) != 0) {
    printf("FAIL: the blocked recv did not return within %d ms\n", TIMEOUT_MS);
    exit(1);
  }
  errno = b->err;
  return b->r;
}

static void wait_fionread(int fd, int want) {
  for (int i = 0; i < TIMEOUT_MS; ++i) {
    int n = -1;
    if (ioctl(fd, FIONREAD, &n) == 0 && n == want) return;
    usleep(1000);
  }
  printf("FAIL: FIONREAD never reached %d\n", want);
  exit(1);
}

static void empty_datagrams(void) {
  struct sockaddr_in saddr, caddr, from;
  int s = udp_bound(&saddr), c = udp_bound(&caddr);
  insert("udp", s);
  char buf[64];

  send_to(c, "", &saddr);
  printf("empty: poll %s\n", revents_name(poll_one(s, POLLIN, TIMEOUT_MS)));
  socklen_t flen = sizeof from;
  ssize_t r = recvfrom(s, buf, sizeof buf, MSG_DONTWAIT, (struct sockaddr*)&from, &flen);
  printf("empty: recvfrom %s from %s\n", result(r), from_name(&from, flen, &caddr));
  printf("empty: then poll %s\n", revents_name(poll_one(s, POLLIN, 0)));

  /* Three datagrams, one of them not empty: recvmmsg waits for all three. */
  send_to(c, "", &saddr);
  send_to(c, "xy", &saddr);
  send_to(c, "", &saddr);
  struct mmsghdr vec[3];
  struct iovec iov[3];
  struct sockaddr_in names[3];
  char bufs[3][16];
  memset(vec, 0, sizeof vec);
  for (int i = 0; i < 3; ++i) {
    iov[i].iov_base = bufs[i];
    iov[i].iov_len = sizeof bufs[i];
    vec[i].msg_hdr.msg_iov = &iov[i];
    vec[i].msg_hdr.msg_iovlen = 1;
    vec[i].msg_hdr.msg_name = &names[i];
    vec[i].msg_hdr.msg_namelen = sizeof names[i];
  }
  struct timespec limit = {TIMEOUT_MS / 1000, 0};
  int n = recvmmsg(s, vec, 3, 0, &limit);
  printf("empty: recvmmsg %d:", n);
  for (int i = 0; i < n; ++i)
    printf(" %u bytes from %s", vec[i].msg_len,
           from_name(&names[i], vec[i].msg_hdr.msg_namelen, &caddr));
  printf("\n");
  close(s);
  close(c);
}

static void udp_shut_rd(void) {
  struct sockaddr_in saddr, caddr, from;
  int s = udp_bound(&saddr), c = udp_bound(&caddr);
  insert("udp", s);
  char buf[64];

  struct blocked b;
  start_blocked(&b, s);
  /* An unbound peer: ENOTCONN, and the receive side is shut down all the same. */
  int r = shutdown(s, SHUT_RD);
  printf("udp: shutdown(SHUT_RD) %s\n", result(r));
  ssize_t got = join_blocked(&b);
  printf("udp: blocked recv %s\n", result(got));
  printf("udp: poll %s\n", revents_name(poll_one(s, POLLIN | POLLRDHUP, TIMEOUT_MS)));
  printf("udp: recv %s\n", result(recv(s, buf, sizeof buf, 0)));
  printf("udp: recv MSG_DONTWAIT %s\n", result(recv(s, buf, sizeof buf, MSG_DONTWAIT)));
  /* Datagrams still arrive after SHUT_RD (UDP does not refuse them). */
  send_to(c, "after", &saddr);
  wait_fionread(s, 5);
  socklen_t flen = sizeof from;
  got = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr*)&from, &flen);
  printf("udp: recvfrom after the shutdown %s from %s\n", result(got),
         from_name(&from, flen, &caddr));
  printf("udp: then recv %s\n", result(recv(s, buf, sizeof buf, 0)));
  close(s);
  close(c);
}

static void tcp_shut_rd(void) {
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int l = socket(AF_INET, SOCK_STREAM, 0);
  if (l < 0 || bind(l, (struct sockaddr*)&addr, sizeof addr) != 0 || listen(l, 1) != 0 ||
      getsockname(l, (struct sockaddr*)&addr, &len) != 0)
    die("listen");
  int c = socket(AF_INET, SOCK_STREAM, 0);
  if (c < 0 || connect(c, (struct sockaddr*)&addr, sizeof addr) != 0) die("connect");
  int a = accept(l, NULL, NULL);
  if (a < 0) die("accept");
  insert("tcp", a);
  char buf[64];

  if (write(c, "hello", 5) != 5) die("write");
  printf("tcp: poll %s\n", revents_name(poll_one(a, POLLIN, TIMEOUT_MS)));
  printf("tcp: recv %s\n", result(recv(a, buf, sizeof buf, 0)));
  struct blocked b;
  start_blocked(&b, a);
  printf("tcp: shutdown(SHUT_RD) %s\n", result(shutdown(a, SHUT_RD)));
  printf("tcp: blocked recv %s\n", result(join_blocked(&b)));
  printf("tcp: poll %s\n", revents_name(poll_one(a, POLLIN | POLLRDHUP, TIMEOUT_MS)));
  printf("tcp: recv %s\n", result(recv(a, buf, sizeof buf, 0)));
  printf("tcp: recv MSG_DONTWAIT %s\n", result(recv(a, buf, sizeof buf, MSG_DONTWAIT)));
  close(a);
  close(c);
  close(l);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  empty_datagrams();
  udp_shut_rd();
  tcp_shut_rd();
  printf("done\n");
  return 0;
}
