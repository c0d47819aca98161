// Readiness of a psock under the shim: for each of poll, ppoll, select,
// pselect, epoll_wait, epoll_pwait and epoll_pwait2, a socket R whose bytes
// come through the shim (its psock queue) is reported readable exactly while
// they are there, a blocked waiter wakes when they arrive from another thread,
// a timeout runs out in full, and a signal interrupts with EINTR. epoll:
// level-triggered, EPOLLET, EPOLLONESHOT, EPOLLRDHUP, EPOLLOUT, and a socket
// registered before it entered its map. select with fds near FD_SETSIZE.
//
//   readiness_probe MODE   (under the shim, SOCKSHIM_POLICY set to MODE's policy)
//
// MODE says how bytes reach R's queue: "msg" (an sk_msg ingress redirect from
// another socket: readiness_msg.json), "pass" (R's stream verdict passes what R
// receives: readiness_pass.json), "redirect" (another socket's verdict
// redirects into R: readiness_redirect.json), "drop" (R's verdict drops
// everything: R is never readable though the kernel has bytes for it).
// Prints one line per check; exits 1 when one failed.
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "traffic.h"

static int failures;

#define CHECK(cond, ...)                                     \
  do {                                                       \
    if (!(cond)) {                                           \
      printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      printf(__VA_ARGS__);                                   \
      printf("\n");                                          \
      fflush(stdout);                                        \
      ++failures;                                            \
    }                                                        \
  } while (0)

enum Mode { MSG, PASS, REDIRECT, DROP };
static enum Mode mode;

typedef int (*map_update_fn)(const char*, const void*, const void*, uint64_t);
typedef int (*map_delete_fn)(const char*, const void*);
static map_update_fn map_update;
static map_delete_fn map_delete;

// Two connections: a1-b1 and a2-b2. R = b2 is at key 1 of map "m". The
// sender of each mode: msg puts a1 at key 0 (its sk_msg redirects into R);
// redirect puts b1 at key 0 (its verdict redirects what it receives into R);
// pass and drop send from a2, R's own peer.
static int a1, b1, a2, b2;
#define R b2

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void sleep_ms(int ms) {
  struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

static void insert(int key, int fd) {
  uint64_t v = (uint64_t)fd;
  int r = map_update("m", &key, &v, 0);
  if (r != 0) DIE("map update key %d fd %d: %d", key, fd, r);
}

static void connect_pairs(void) {
  struct sockaddr_in addr;
  int l = tcp_listen_loopback(&addr);
  a1 = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(a1, (struct sockaddr*)&addr, sizeof addr) != 0) DIE("connect");
  b1 = accept(l, NULL, NULL);
  a2 = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(a2, (struct sockaddr*)&addr, sizeof addr) != 0) DIE("connect");
  b2 = accept(l, NULL, NULL);
  close(l);
  if (b1 < 0 || b2 < 0) DIE("accept");
}

static void insert_all(void) {
  insert(1, R);
  if (mode == MSG) insert(0, a1);
  if (mode == REDIRECT) insert(0, b1);
}

static int sender(void) {
  return mode == MSG || mode == REDIRECT ? a1 : a2;
}

static void arrive(const char* bytes) {
  size_t n = strlen(bytes);
  if (send(sender(), bytes, n, 0) != (ssize_t)n) DIE("send: %s", strerror(errno));
}

// Reads what R has without waiting; returns the count.
static int drain(void) {
  char buf[4096];
  int total = 0;
  for (;;) {
    ssize_t n = recv(R, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) return total;
    total += (int)n;
  }
}

// ---- the calls, each asked one question about one fd ----

enum Call { POLL, PPOLL, SELECT, PSELECT, EPOLL_WAIT, EPOLL_PWAIT, EPOLL_PWAIT2, NCALLS };
static const char* call_name[] = {"poll",       "ppoll",       "select",      "pselect",
                                  "epoll_wait", "epoll_pwait", "epoll_pwait2"};

static int epoll_call(enum Call c, int ep, struct epoll_event* ev, int max, int timeout_ms) {
  struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  switch (c) {
    case EPOLL_WAIT:
      return epoll_wait(ep, ev, max, timeout_ms);
    case EPOLL_PWAIT:
      return epoll_pwait(ep, ev, max, timeout_ms, NULL);
    default:
      return epoll_pwait2(ep, ev, max, timeout_ms < 0 ? NULL : &ts, NULL);
  }
}

// Waits up to timeout_ms (-1: forever) for fd to be readable with call c.
// Returns what the call returned; *readable says whether fd was reported.
static int wait_readable(enum Call c, int fd, int timeout_ms, int* readable) {
  struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
  struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  *readable = 0;
  int r;
  switch (c) {
    case POLL:
    case PPOLL: {
      struct pollfd p = {fd, POLLIN, 0};
      r = c == POLL ? poll(&p, 1, timeout_ms) : ppoll(&p, 1, timeout_ms < 0 ? NULL : &ts, NULL);
      *readable = r > 0 && (p.revents & POLLIN);
      return r;
    }
    case SELECT:
    case PSELECT: {
      fd_set rs;
      FD_ZERO(&rs);
      FD_SET(fd, &rs);
      r = c == SELECT ? select(fd + 1, &rs, NULL, NULL, timeout_ms < 0 ? NULL : &tv)
                      : pselect(fd + 1, &rs, NULL, NULL, timeout_ms < 0 ? NULL : &ts, NULL);
      *readable = r > 0 && FD_ISSET(fd, &rs);
      return r;
    }
    default: {
      int ep = epoll_create1(EPOLL_CLOEXEC);
      struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0xfeed0000u + (unsigned)fd};
      epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
      struct epoll_event out[4];
      r = epoll_call(c, ep, out, 4, timeout_ms);
      int err = errno;
      *readable = r == 1 && out[0].data.u64 == ev.data.u64 && (out[0].events & EPOLLIN);
      close(ep);
      errno = err;
      return r;
    }
  }
}

// ---- checks common to every call ----

static void check_level(enum Call c) {
  const char* n = call_name[c];
  int rd;
  int r = wait_readable(c, R, 0, &rd);
  CHECK(r == 0 && !rd, "%s: R readable before anything arrived (r=%d)", n, r);
  arrive("hello");
  r = wait_readable(c, R, 2000, &rd);
  if (mode == DROP) {
    CHECK(r == 0 && !rd, "%s: R readable though its verdict drops (r=%d)", n, r);
    drain();
    return;
  }
  CHECK(r == 1 && rd, "%s: R not readable with bytes queued (r=%d)", n, r);
  r = wait_readable(c, R, 0, &rd);
  CHECK(r == 1 && rd, "%s: R not readable again before a read (r=%d)", n, r);
  int got = drain();
  CHECK(got == 5, "%s: read %d bytes, want 5", n, got);
  r = wait_readable(c, R, 0, &rd);
  CHECK(r == 0 && !rd, "%s: R readable after its queue was read (r=%d)", n, r);
  printf("ok %s level\n", n);
}

static void check_timeout(enum Call c) {
  int rd;
  double t0 = now_ms();
  int r = wait_readable(c, R, 300, &rd);
  double took = now_ms() - t0;
  CHECK(r == 0 && took >= 295 && took < 1500, "%s: timeout 300 ms: r=%d after %.0f ms",
        call_name[c], r, took);
  printf("ok %s timeout (%.0f ms)\n", call_name[c], took);
}

struct Delayed {
  int ms;
  pthread_t target;  // signal it (EINTR) instead of sending
  int signal;
};

static void* delayed(void* arg) {
  struct Delayed* d = arg;
  sleep_ms(d->ms);
  if (d->signal)
    pthread_kill(d->target, SIGUSR1);
  else
    arrive("wake");
  return NULL;
}

static void check_wakeup(enum Call c) {
  if (mode == DROP) return;
  struct Delayed d = {150, 0, 0};
  pthread_t t;
  pthread_create(&t, NULL, delayed, &d);
  int rd;
  double t0 = now_ms();
  int r = wait_readable(c, R, -1, &rd);
  double took = now_ms() - t0;
  pthread_join(t, NULL);
  CHECK(r == 1 && rd && took >= 100 && took < 3000, "%s: blocked waiter: r=%d after %.0f ms",
        call_name[c], r, took);
  drain();
  printf("ok %s wake-up from another thread (%.0f ms)\n", call_name[c], took);
}

static void on_usr1(int sig) {
  (void)sig;
}

static void check_eintr(enum Call c) {
  struct Delayed d = {150, pthread_self(), 1};
  pthread_t t;
  pthread_create(&t, NULL, delayed, &d);
  int rd;
  double t0 = now_ms();
  errno = 0;
  int r = wait_readable(c, R, 5000, &rd);
  int err = errno;
  double took = now_ms() - t0;
  pthread_join(t, NULL);
  CHECK(r == -1 && err == EINTR && took < 3000, "%s: signal: r=%d errno=%d after %.0f ms",
        call_name[c], r, err, took);
  printf("ok %s EINTR\n", call_name[c]);
}

// select and pselect on R moved to fds near FD_SETSIZE.
static void check_high_fds(enum Call c) {
  if (mode == DROP) return;
  int fds[] = {FD_SETSIZE - 1, FD_SETSIZE - 24};
  for (size_t i = 0; i < sizeof fds / sizeof *fds; ++i) {
    int hi = dup2(R, fds[i]);
    CHECK(hi == fds[i], "dup2 to %d: %s", fds[i], strerror(errno));
    int rd;
    int r = wait_readable(c, hi, 0, &rd);
    CHECK(r == 0 && !rd, "%s fd %d: readable with nothing queued", call_name[c], hi);
    arrive("high");
    r = wait_readable(c, hi, 2000, &rd);
    CHECK(r == 1 && rd, "%s fd %d: not readable with bytes queued (r=%d)", call_name[c], hi, r);
    drain();
    close(hi);
  }
  printf("ok %s fds near FD_SETSIZE\n", call_name[c]);
}

// ---- epoll modes ----

static int ep_add(int fd, uint32_t events, uint64_t data) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = events, .data.u64 = data};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) DIE("epoll_ctl ADD: %s", strerror(errno));
  return ep;
}

// One wait; returns the events reported for data, 0 when none, -1 when
// something else was reported.
static int ep_once(enum Call c, int ep, uint64_t data, int timeout_ms) {
  struct epoll_event out[4];
  int r = epoll_call(c, ep, out, 4, timeout_ms);
  if (r == 0) return 0;
  if (r != 1 || out[0].data.u64 != data) return -1;
  return (int)out[0].events;
}

static void check_epoll_modes(enum Call c) {
  if (mode == DROP) return;
  const char* n = call_name[c];
  const uint64_t data = 0xabcdef01;
  // Level-triggered: reported on every wait until read.
  int ep = ep_add(R, EPOLLIN, data);
  arrive("lt");
  int e1 = ep_once(c, ep, data, 2000), e2 = ep_once(c, ep, data, 0);
  CHECK(e1 > 0 && (e1 & EPOLLIN) && e2 > 0 && (e2 & EPOLLIN), "%s LT: %#x then %#x", n, e1, e2);
  drain();
  CHECK(ep_once(c, ep, data, 0) == 0, "%s LT: reported after the read", n);
  close(ep);
  printf("ok %s EPOLLIN level-triggered\n", n);

  // Edge-triggered: one report per arrival, none while nothing new comes.
  ep = ep_add(R, EPOLLIN | EPOLLET, data);
  arrive("et1");
  e1 = ep_once(c, ep, data, 2000);
  e2 = ep_once(c, ep, data, 200);
  CHECK(e1 > 0 && (e1 & EPOLLIN) && e2 == 0, "%s ET: %#x then %#x", n, e1, e2);
  // The kernel reports an edge per arrival even when the reader left bytes.
  arrive("etx");
  e2 = ep_once(c, ep, data, 2000);
  CHECK(e2 == EPOLLIN, "%s ET: no edge for an arrival onto unread bytes (%#x)", n, e2);
  drain();
  arrive("et2");
  e1 = ep_once(c, ep, data, 2000);
  CHECK(e1 > 0 && (e1 & EPOLLIN), "%s ET: second arrival %#x", n, e1);
  drain();
  CHECK(ep_once(c, ep, data, 100) == 0, "%s ET: reported after the read", n);
  close(ep);
  printf("ok %s EPOLLET\n", n);

  // One-shot: one report until the registration is armed again with MOD.
  ep = ep_add(R, EPOLLIN | EPOLLONESHOT, data);
  arrive("os");
  e1 = ep_once(c, ep, data, 2000);
  e2 = ep_once(c, ep, data, 200);
  CHECK(e1 > 0 && (e1 & EPOLLIN) && e2 == 0, "%s ONESHOT: %#x then %#x", n, e1, e2);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = data};
  CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, R, &ev) == 0, "%s ONESHOT: MOD: %s", n, strerror(errno));
  e1 = ep_once(c, ep, data, 2000);
  CHECK(e1 > 0 && (e1 & EPOLLIN), "%s ONESHOT: not reported after the rearm (%#x)", n, e1);
  drain();
  CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, R, &ev) == 0, "%s ONESHOT: MOD: %s", n, strerror(errno));
  CHECK(ep_once(c, ep, data, 100) == 0, "%s ONESHOT: reported after the read", n);
  close(ep);
  printf("ok %s EPOLLONESHOT\n", n);

  // A dup of the epoll fd reports the same registrations, with their data.
  ep = ep_add(R, EPOLLIN, data);
  int dup_ep = dup(ep);
  arrive("dup");
  e1 = ep_once(c, dup_ep, data, 2000);
  CHECK(e1 == EPOLLIN, "%s dup'd epoll fd: %#x", n, e1);
  close(ep);
  e1 = ep_once(c, dup_ep, data, 0);
  CHECK(e1 == EPOLLIN, "%s dup'd epoll fd, original closed: %#x", n, e1);
  drain();
  CHECK(ep_once(c, dup_ep, data, 100) == 0, "%s dup'd epoll fd: reported after the read", n);
  close(dup_ep);
  printf("ok %s dup'd epoll fd\n", n);

  // EPOLLOUT is the kernel's, with or without the shim.
  ep = ep_add(R, EPOLLIN | EPOLLOUT, data);
  e1 = ep_once(c, ep, data, 1000);
  CHECK(e1 == EPOLLOUT, "%s OUT: %#x, want EPOLLOUT alone", n, e1);
  arrive("out");
  // EPOLLOUT alone until the bytes are queued (the engine queues them a moment later).
  double t0 = now_ms();
  do e1 = ep_once(c, ep, data, 100);
  while (e1 == EPOLLOUT && now_ms() - t0 < 2000);
  CHECK(e1 == (EPOLLIN | EPOLLOUT), "%s OUT: %#x, want EPOLLIN|EPOLLOUT", n, e1);
  drain();
  close(ep);
  printf("ok %s EPOLLOUT\n", n);
}

// ---- cases run once ----

// Registration before insertion: R is in an epoll set (and a poll waiter's
// view) before it enters the map; its readiness follows without another
// epoll_ctl.
static void check_registered_before(void) {
  const uint64_t data = 0x5eed;
  int ep = ep_add(R, EPOLLIN | EPOLLRDHUP, data);
  int et = ep_add(R, EPOLLIN | EPOLLET, data + 1);
  insert_all();
  CHECK(ep_once(EPOLL_WAIT, ep, data, 100) == 0, "before: readable with nothing queued");
  arrive("late");
  int e = ep_once(EPOLL_WAIT, ep, data, 2000);
  if (mode == DROP) {
    CHECK(e == 0, "before: the kernel's bytes seen though the verdict drops (%#x)", e);
    CHECK(ep_once(EPOLL_WAIT, et, data + 1, 100) == 0, "before: ET reported a dropped arrival");
  } else {
    CHECK(e == EPOLLIN, "before: %#x, want EPOLLIN", e);
    e = ep_once(EPOLL_WAIT, et, data + 1, 2000);
    CHECK(e == EPOLLIN, "before (ET): %#x, want EPOLLIN", e);
    CHECK(drain() == 4, "before: read");
  }
  CHECK(ep_once(EPOLL_WAIT, ep, data, 100) == 0, "before: readable after the read");
  close(ep);
  close(et);
  printf("ok registration before insertion\n");
}

// A wait blocked since before the socket entered its map wakes for its bytes.
static void* insert_then_send(void* arg) {
  (void)arg;
  sleep_ms(150);
  insert_all();
  arrive("wake");
  return NULL;
}

static void check_blocked_before_insertion(void) {
  int ep = ep_add(R, EPOLLIN, 9);
  pthread_t t;
  pthread_create(&t, NULL, insert_then_send, NULL);
  int e = ep_once(EPOLL_WAIT, ep, 9, 3000);
  pthread_join(t, NULL);
  CHECK(e == EPOLLIN, "blocked before insertion: %#x", e);
  drain();
  close(ep);
  printf("ok wait blocked before insertion\n");
}

// An EPOLLONESHOT registration that fired before R entered its map stays
// disarmed until the application rearms it.
static void check_oneshot_fired_before_insertion(void) {
  const uint64_t data = 0x0e;
  int ep = ep_add(R, EPOLLIN | EPOLLONESHOT, data);
  if (send(a2, "k", 1, 0) != 1) DIE("send");
  CHECK(ep_once(EPOLL_WAIT, ep, data, 2000) == EPOLLIN, "oneshot before: the kernel's byte");
  insert_all();
  if (mode != DROP) arrive("more");
  CHECK(ep_once(EPOLL_WAIT, ep, data, 300) == 0, "oneshot before: reported before the rearm");
  struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.u64 = data};
  CHECK(epoll_ctl(ep, EPOLL_CTL_MOD, R, &ev) == 0, "oneshot before: MOD");
  int e = ep_once(EPOLL_WAIT, ep, data, mode == DROP ? 300 : 2000);
  // Under DROP the byte that came before the insertion may still make R
  // readable, as in the kernel (tcp_poll sees it until a read runs it through
  // the verdict, §4.3).
  CHECK(e == EPOLLIN || (mode == DROP && e == 0), "oneshot before: %#x after the rearm", e);
  drain();
  close(ep);
  printf("ok EPOLLONESHOT fired before insertion\n");
}

// EPOLLRDHUP: reported once the peer's FIN is due, not before.
static void check_rdhup(enum Call c) {
  if (mode == DROP) return;
  const uint64_t data = 0x4d;
  int ep = ep_add(R, EPOLLIN | EPOLLRDHUP, data);
  arrive("bye");
  int e = ep_once(c, ep, data, 2000);
  CHECK(e == EPOLLIN, "%s RDHUP: %#x before the FIN, want EPOLLIN", call_name[c], e);
  shutdown(a2, SHUT_WR);
  double t0 = now_ms();
  do e = ep_once(c, ep, data, 500);
  while (e > 0 && !(e & EPOLLRDHUP) && now_ms() - t0 < 2000);
  CHECK(e > 0 && (e & EPOLLRDHUP) && (e & EPOLLIN), "%s RDHUP: %#x after the FIN", call_name[c], e);
  CHECK(drain() == 3, "RDHUP: the bytes before the FIN");
  char b;
  CHECK(recv(R, &b, 1, MSG_DONTWAIT) == 0, "RDHUP: recv after the FIN is not 0");
  struct pollfd p = {R, POLLIN | POLLRDHUP, 0};
  CHECK(poll(&p, 1, 1000) == 1 && (p.revents & POLLRDHUP), "poll after the FIN: %#x", p.revents);
  close(ep);
  printf("ok %s EPOLLRDHUP\n", call_name[c]);
}

// Out of its map, R's readiness is the kernel's again, for a registration
// made while it was in.
static void check_removed(void) {
  const uint64_t data = 0x77;
  int ep = ep_add(R, EPOLLIN, data);
  int key = 1;
  CHECK(map_delete("m", &key) == 0, "map delete");
  CHECK(ep_once(EPOLL_WAIT, ep, data, 100) == 0, "removed: readable with nothing queued");
  if (send(a2, "k", 1, 0) != 1) DIE("send");
  int e = ep_once(EPOLL_WAIT, ep, data, 2000);
  CHECK(e == EPOLLIN, "removed: %#x for the kernel's byte, want EPOLLIN", e);
  struct pollfd p = {R, POLLIN, 0};
  CHECK(poll(&p, 1, 1000) == 1, "removed: poll");
  CHECK(drain() == 1, "removed: read");
  close(ep);
  printf("ok removed from the map\n");
}

// A fork child waits on the parent's registrations and makes its own: the
// records' lock works there and no token leaks. (Who sees the queued bytes
// after a fork is the engine's rule: the child may find the queue empty.)
static void check_fork(void) {
  if (mode == DROP) return;
  const uint64_t data = 0xf0f0;
  int ep = ep_add(R, EPOLLIN, data);
  arrive("fork");
  CHECK(ep_once(EPOLL_WAIT, ep, data, 2000) == EPOLLIN, "fork: the parent's wait before");
  pid_t pid = fork();
  if (pid == 0) {
    int e = ep_once(EPOLL_WAIT, ep, data, 0);
    int ep2 = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = data + 1};
    int r = epoll_ctl(ep2, EPOLL_CTL_ADD, R, &ev);
    int e2 = ep_once(EPOLL_WAIT, ep2, data + 1, 0);
    _exit((e == 0 || e == EPOLLIN) && r == 0 && (e2 == 0 || e2 == EPOLLIN) ? 0 : 1);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fork: the child's wait");
  int e = ep_once(EPOLL_WAIT, ep, data, 0);
  // The child discards its copy of the queue but replaces, never drains, the
  // eventfd it shares with the parent: the parent's shadow stays readable.
  CHECK(e == EPOLLIN, "fork: the parent's wait after: %#x", e);
  drain();
  close(ep);
  printf("ok fork child\n");
}

// R closed while registered, with bytes queued: the kernel drops its
// registration with the last fd; its shadow must not report it (nor spin).
static void check_closed_while_registered(void) {
  const uint64_t data = 0xc105ed;
  int ep = ep_add(R, EPOLLIN, data);
  if (mode != DROP) {
    arrive("gone");
    CHECK(ep_once(EPOLL_WAIT, ep, data, 2000) == EPOLLIN, "closed: not readable before the close");
  }
  close(R);
  struct epoll_event out[4];
  double t0 = now_ms();
  int r = epoll_wait(ep, out, 4, 300);
  double took = now_ms() - t0;
  CHECK(r == 0 && took >= 295, "closed: epoll_wait gave %d (data %#llx) after %.0f ms", r,
        r > 0 ? (unsigned long long)out[0].data.u64 : 0ULL, took);
  close(ep);
  printf("ok closed while registered\n");
}

int main(int argc, char** argv) {
  if (argc != 2) DIE("usage: readiness_probe msg|pass|redirect|drop");
  const char* names[] = {"msg", "pass", "redirect", "drop"};
  int m = 0;
  while (m < 4 && strcmp(argv[1], names[m]) != 0) ++m;
  if (m == 4) DIE("unknown mode %s", argv[1]);
  mode = (enum Mode)m;
  // POSIX dlsym: a symbol's address converts to a function pointer through memcpy.
  void* u = dlsym(RTLD_DEFAULT, "sockshim_map_update_elem");
  void* d = dlsym(RTLD_DEFAULT, "sockshim_map_delete_elem");
  memcpy(&map_update, &u, sizeof u);
  memcpy(&map_delete, &d, sizeof d);
  if (!map_update || !map_delete) DIE("not under the shim");
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1;  // no SA_RESTART: an interrupted wait returns EINTR
  sigaction(SIGUSR1, &sa, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);

  connect_pairs();
  check_registered_before();
  for (int c = 0; c < NCALLS; ++c) {
    check_level((enum Call)c);
    check_timeout((enum Call)c);
    check_wakeup((enum Call)c);
    check_eintr((enum Call)c);
    if (c == SELECT || c == PSELECT) check_high_fds((enum Call)c);
    if (c >= EPOLL_WAIT) check_epoll_modes((enum Call)c);
  }
  check_fork();
  check_removed();

  // Fresh pairs: a wait that blocked before R entered its map; the FIN under
  // each epoll call; a close while registered.
  for (int c = EPOLL_WAIT; c <= NCALLS + 1; ++c) {
    close(a1), close(b1), close(a2), close(b2);
    connect_pairs();
    if (c == NCALLS + 1) {
      check_oneshot_fired_before_insertion();
      continue;
    }
    if (c == EPOLL_WAIT && mode != DROP)
      check_blocked_before_insertion();
    else
      insert_all();
    if (c < NCALLS)
      check_rdhup((enum Call)c);
    else
      check_closed_while_registered();
  }
  printf(failures ? "FAILED: %d\n" : "PASS\n", failures);
  return failures ? 1 : 0;
}
