// A signal handler that writes to a self-pipe (and sends on a socketpair, the
// other common self-pipe) interrupts threads that are busy in socket calls,
// thousands of times. Nothing may deadlock (alarm() kills the process), no byte
// may be lost or corrupted, and every signal must reach the pipe.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include "traffic.h"

enum { kWorkers = 3, kRounds = 8000 };

static int g_pipe[2], g_pair[2];
static atomic_long g_handled, g_pipe_failed, g_pair_failed;
static atomic_int g_workers_done;

static void on_signal(int sig) {
  (void)sig;
  int saved = errno;
  if (write(g_pipe[1], "s", 1) != 1) atomic_fetch_add(&g_pipe_failed, 1);
  if (send(g_pair[0], "s", 1, MSG_DONTWAIT) != 1) atomic_fetch_add(&g_pair_failed, 1);
  atomic_fetch_add(&g_handled, 1);
  errno = saved;
}

// Ping-pong on its own connection, with socket churn (create, dup, fcntl,
// close) so the registry changes while handlers run on top of it.
static void* worker(void* arg) {
  unsigned id = (unsigned)(long)arg;
  int fds[2];
  tcp_pair(fds);
  for (unsigned seq = 0; seq < kRounds; ++seq) {
    round_trip(fds[0], fds[1], id, seq);
    if (seq % 16 == 0) {
      int s = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
      int d = fcntl(s, F_DUPFD_CLOEXEC, 0);
      int fl = fcntl(d, F_GETFL);
      if (s < 0 || d < 0 || fcntl(s, F_SETFL, fl & ~O_NONBLOCK) != 0)
        DIE("churn: %s", strerror(errno));
      close(s);
      close(d);
    }
  }
  close(fds[0]);
  close(fds[1]);
  atomic_fetch_add(&g_workers_done, 1);
  return NULL;
}

static long drain(int fd) {
  char buf[4096];
  long total = 0;
  for (;;) {
    ssize_t r = read(fd, buf, sizeof buf);
    if (r > 0) {
      total += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    return total;
  }
}

int main(void) {
  alarm(100);  // a deadlock ends as SIGALRM, not as a hung test
  if (pipe2(g_pipe, O_NONBLOCK | O_CLOEXEC) != 0 ||
      socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, g_pair) != 0)
    DIE("self-pipe: %s", strerror(errno));
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, NULL);

  pthread_t threads[kWorkers];
  for (long i = 0; i < kWorkers; ++i) pthread_create(&threads[i], NULL, worker, (void*)i);

  // Signal the workers, round robin, while draining both self-pipes.
  long sent = 0, from_pipe = 0, from_pair = 0;
  struct timespec gap = {0, 50 * 1000};
  while (atomic_load(&g_workers_done) < kWorkers) {
    for (int i = 0; i < kWorkers; ++i)
      if (pthread_kill(threads[i], SIGUSR1) == 0) ++sent;
    nanosleep(&gap, NULL);
    from_pipe += drain(g_pipe[0]);
    from_pair += drain(g_pair[1]);
  }
  for (int i = 0; i < kWorkers; ++i) pthread_join(threads[i], NULL);
  from_pipe += drain(g_pipe[0]);
  from_pair += drain(g_pair[1]);

  long handled = atomic_load(&g_handled);
  fprintf(stderr, "signals sent %ld, handled %ld, pipe bytes %ld, socketpair bytes %ld\n", sent,
          handled, from_pipe, from_pair);
  if (handled < 100) DIE("only %ld signals were handled", handled);
  if (from_pipe + atomic_load(&g_pipe_failed) != handled)
    DIE("pipe: %ld bytes + %ld failed writes for %ld signals", from_pipe,
        atomic_load(&g_pipe_failed), handled);
  if (from_pair + atomic_load(&g_pair_failed) != handled)
    DIE("socketpair: %ld bytes + %ld failed sends for %ld signals", from_pair,
        atomic_load(&g_pair_failed), handled);

  // The fd table is still sound: the numbers the workers used are free again
  // (the next socket gets the lowest), and a fresh pair works.
  int fds[2];
  tcp_pair(fds);
  round_trip(fds[0], fds[1], 99, 0);
  printf("workers: %d x %d verified round trips\n", kWorkers, kRounds);
  printf("every signal reached the pipe and the socketpair\n");
  printf("fresh pair after the storm: fds %d %d\n", fds[0], fds[1]);
  return 0;
}
