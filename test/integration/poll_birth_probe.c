// Waits already asleep when a psock is born (test_poll_birth.py). Run under
// the shim with poll_birth.json (a sockmap with a 64-byte fixed-frame parser
// and a pass verdict, no sockops): accepts one connection, which is in no map,
// and blocks four threads on it, in poll, select, ppoll and pselect, each
// with a 20 s timeout. The test then puts the socket in the map with
// `sockshim map update`, sends part of a frame, tells the probe ("rest") and
// sends the rest.
//
// Lines out (JSON): {"pid", "port"}; after the accept {"fd", "tids"}; after
// "rest" on stdin {"rest": true}; once every wait returned, what each
// returned ({"how", "r", "readable", "early": returned before "rest", "ms"})
// and what a MSG_DONTWAIT read then got.
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DIE(...)                  \
  do {                            \
    fprintf(stderr, __VA_ARGS__); \
    fprintf(stderr, "\n");        \
    exit(2);                      \
  } while (0)

enum { POLL, SELECT, PPOLL, PSELECT, WAITS };
static const char* const kHow[WAITS] = {"poll", "select", "ppoll", "pselect"};
static const int kTimeoutMs = 20000;

static int conn;
static atomic_bool rest_sent;
static atomic_int tids[WAITS];

struct Result {
  int r, err;
  int readable;
  int early;
  double ms;
};
static struct Result results[WAITS];

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void* wait_on(void* arg) {
  const int how = (int)(intptr_t)arg;
  const struct timespec ts = {kTimeoutMs / 1000, 0};
  struct timeval tv = {kTimeoutMs / 1000, 0};
  struct pollfd p = {conn, POLLIN, 0};
  fd_set r;
  FD_ZERO(&r);
  FD_SET(conn, &r);
  atomic_store(&tids[how], gettid());
  const double start = now_ms();
  int ret = -1;
  switch (how) {
    case POLL:
      ret = poll(&p, 1, kTimeoutMs);
      break;
    case SELECT:
      ret = select(conn + 1, &r, NULL, NULL, &tv);
      break;
    case PPOLL:
      ret = ppoll(&p, 1, &ts, NULL);
      break;
    case PSELECT:
      ret = pselect(conn + 1, &r, NULL, NULL, &ts, NULL);
      break;
  }
  struct Result* res = &results[how];
  res->err = ret < 0 ? errno : 0;
  res->early = !atomic_load(&rest_sent);
  res->ms = now_ms() - start;
  res->r = ret;
  res->readable = how == POLL || how == PPOLL ? (p.revents & POLLIN) != 0 : FD_ISSET(conn, &r);
  return NULL;
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  int srv = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (srv < 0 || bind(srv, (struct sockaddr*)&a, sizeof a) || listen(srv, 1) ||
      getsockname(srv, (struct sockaddr*)&a, &len))
    DIE("listen: %s", strerror(errno));
  printf("{\"pid\": %d, \"port\": %d}\n", getpid(), ntohs(a.sin_port));
  conn = accept(srv, NULL, NULL);
  if (conn < 0) DIE("accept: %s", strerror(errno));

  pthread_t t[WAITS];
  for (int i = 0; i < WAITS; ++i)
    if (pthread_create(&t[i], NULL, wait_on, (void*)(intptr_t)i)) DIE("pthread_create");
  for (int i = 0; i < WAITS; ++i)
    while (!atomic_load(&tids[i])) sched_yield();
  printf("{\"fd\": %d, \"tids\": [%d, %d, %d, %d]}\n", conn, tids[0], tids[1], tids[2], tids[3]);

  char line[64];
  if (!fgets(line, sizeof line, stdin) || strcmp(line, "rest\n") != 0) DIE("expected rest");
  atomic_store(&rest_sent, 1);
  printf("{\"rest\": true}\n");

  for (int i = 0; i < WAITS; ++i) pthread_join(t[i], NULL);
  char buf[256];
  ssize_t got = recv(conn, buf, sizeof buf, MSG_DONTWAIT);
  int err = got < 0 ? errno : 0;
  printf("{\"waits\": [");
  for (int i = 0; i < WAITS; ++i)
    printf(
        "%s{\"how\": \"%s\", \"r\": %d, \"errno\": %d, \"readable\": %s, \"early\": %s, "
        "\"ms\": %.0f}",
        i ? ", " : "", kHow[i], results[i].r, results[i].err,
        results[i].readable ? "true" : "false", results[i].early ? "true" : "false", results[i].ms);
  printf("], \"read\": %zd, \"read_errno\": %d, \"bytes\": \"%.*s\"}\n", got, err,
         got > 0 ? (int)got : 0, buf);
  return 0;
}
