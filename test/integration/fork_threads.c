// fork() from the main thread while other threads send and receive, and while a
// churn thread connects, accepts and shuts sockets down (the paths that take a
// socket's lock). Each child must work on its own (new sockets, a thread of its
// own, traffic, connect, shutdown) and exit cleanly through exit(); the parent's
// traffic must stay intact. Everything is bounded in time.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

#include "traffic.h"

enum { kSenders = 2, kForks = 25 };

static atomic_int g_stop;
static atomic_long g_rounds;
static struct sockaddr_in g_churn_addr;
static int g_churn_listener;

static void* sender(void* arg) {
  unsigned id = (unsigned)(long)arg;
  int fds[2];
  tcp_pair(fds);
  for (unsigned seq = 0; !atomic_load(&g_stop); ++seq) {
    round_trip(fds[0], fds[1], id, seq);
    atomic_fetch_add(&g_rounds, 1);
  }
  close(fds[0]);
  close(fds[1]);
  return NULL;
}

static void* churn(void* arg) {
  (void)arg;
  while (!atomic_load(&g_stop)) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr*)&g_churn_addr, sizeof g_churn_addr) != 0)
      DIE("churn connect: %s", strerror(errno));
    int a = accept(g_churn_listener, NULL, NULL);
    if (a < 0) DIE("churn accept: %s", strerror(errno));
    shutdown(c, SHUT_WR);
    shutdown(a, SHUT_RDWR);
    close(a);
    close(c);
  }
  return NULL;
}

static void* child_thread(void* arg) {
  int* fds = arg;
  for (unsigned seq = 0; seq < 200; ++seq) round_trip(fds[0], fds[1], 1000, seq);
  return NULL;
}

// What a child does with the state it inherited: new sockets, its own thread,
// the lock-taking calls, and a normal exit.
static void child(void) {
  alarm(20);
  int fds[2], more[2];
  tcp_pair(fds);
  tcp_pair(more);
  pthread_t t;
  if (pthread_create(&t, NULL, child_thread, more) != 0) DIE("child: pthread_create");
  for (unsigned seq = 0; seq < 200; ++seq) round_trip(fds[0], fds[1], 2000, seq);
  pthread_join(t, NULL);
  int d = dup(fds[0]);
  if (shutdown(d, SHUT_WR) != 0) DIE("child: shutdown: %s", strerror(errno));
  char byte;
  if (recv(fds[1], &byte, 1, 0) != 0) DIE("child: no end of stream after shutdown");
  close(d);
  close(fds[0]);
  close(fds[1]);
  close(more[0]);
  close(more[1]);
  exit(0);
}

static int wait_bounded(pid_t pid) {
  for (int i = 0; i < 2000; ++i) {
    int status;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (r < 0) DIE("waitpid: %s", strerror(errno));
    struct timespec ms10 = {0, 10 * 1000 * 1000};
    nanosleep(&ms10, NULL);
  }
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
  DIE("child %d did not finish within 20 s", (int)pid);
}

int main(void) {
  alarm(120);
  g_churn_listener = tcp_listen_loopback(&g_churn_addr);
  pthread_t threads[kSenders + 1];
  for (long i = 0; i < kSenders; ++i) pthread_create(&threads[i], NULL, sender, (void*)i);
  pthread_create(&threads[kSenders], NULL, churn, NULL);

  int clean = 0;
  for (int i = 0; i < kForks; ++i) {
    struct timespec gap = {0, 20 * 1000 * 1000};
    nanosleep(&gap, NULL);
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) DIE("fork: %s", strerror(errno));
    if (pid == 0) child();
    int status = wait_bounded(pid);
    if (status != 0) DIE("child %d exited with %d", i, status);
    ++clean;
  }
  atomic_store(&g_stop, 1);
  for (int i = 0; i <= kSenders; ++i) pthread_join(threads[i], NULL);
  if (atomic_load(&g_rounds) < kForks) DIE("the senders hardly ran");
  fprintf(stderr, "%ld verified round trips in the parent\n", atomic_load(&g_rounds));
  printf("%d forks, %d children exited cleanly\n", kForks, clean);
  printf("parent traffic verified while forking\n");
  return 0;
}
