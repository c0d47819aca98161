// The wake of blocking poll and select calls when a psock is born (poll_wake.h).
#include "core/readiness/poll_wake.h"

#include <sys/eventfd.h>

#include <mutex>

#include "core/psock/sk_msg_queue.h"
#include "core/sock/errno_saver.h"
#include "core/sock/fork_reset.h"
#include "core/sock/registry.h"

namespace sockshim {
namespace {

// A thread's wake: its eventfd (made at its first blocking call on a socket
// without a psock, closed when the thread exits) and, while armed, the set its
// call waits on.
struct ThreadWake {
  int fd = -1;
  const pollfd* fds = nullptr;
  nfds_t n = 0;
  bool armed = false;
  bool woken = false;  // its eventfd was written: emptied at the disarm
  bool listed = false;
  ThreadWake* prev = nullptr;  // in Wakes::armed
  ThreadWake* next = nullptr;
  ThreadWake* prev_thread = nullptr;  // in Wakes::threads
  ThreadWake* next_thread = nullptr;
  ~ThreadWake();
};

struct Wakes {
  std::mutex lock;
  ThreadWake* armed = nullptr;
  ThreadWake* threads = nullptr;  // every thread with an eventfd (a fork child closes them)
};

// Constant-initialised and trivially destroyed: no allocation, and usable
// by threads that exit after static destructors ran.
constinit Wakes g_wakes;

Wakes& wakes() noexcept {
  return g_wakes;
}

thread_local ThreadWake t_wake;

void unlist(Wakes& w, ThreadWake& t) noexcept {
  if (!t.listed) return;
  (t.prev_thread ? t.prev_thread->next_thread : w.threads) = t.next_thread;
  if (t.next_thread) t.next_thread->prev_thread = t.prev_thread;
  t.listed = false;
}

ThreadWake::~ThreadWake() {
  if (fd < 0) return;
  Wakes& w = wakes();
  {
    std::lock_guard g(w.lock);
    unlist(w, *this);
  }
  registry::close_internal(fd);
}

// The thread's eventfd, made on first use; -1 when none can be made.
int wake_fd(ThreadWake& t) noexcept {
  // A program that closes every fd (a close-all loop) may have closed it: the
  // number may be the program's now, never to be written to.
  if (t.fd >= 0 && !registry::is_internal(registry::peek(t.fd))) t.fd = -1;
  if (t.fd >= 0) return t.fd;
  // A vfork child shares this thread's memory but not its fd table.
  if (registry::in_vfork_child()) return -1;
  int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return -1;
  t.fd = registry::make_internal(fd);
  Wakes& w = wakes();
  std::lock_guard g(w.lock);
  if (!t.listed) {
    t.prev_thread = nullptr;
    t.next_thread = w.threads;
    if (w.threads) w.threads->prev_thread = &t;
    w.threads = &t;
    t.listed = true;
  }
  return t.fd;
}

}  // namespace

int poll_wake_arm(const pollfd* fds, nfds_t n) noexcept {
  ThreadWake& t = t_wake;
  if (t.armed) return -1;  // a nested call (a signal handler's): the outer one keeps it
  ErrnoSaver saved;
  int fd = wake_fd(t);
  if (fd < 0) return -1;
  Wakes& w = wakes();
  std::lock_guard g(w.lock);
  t.fds = fds;
  t.n = n;
  t.woken = false;
  t.armed = true;
  t.prev = nullptr;
  t.next = w.armed;
  if (w.armed) w.armed->prev = &t;
  w.armed = &t;
  return fd;
}

bool poll_wake_disarm() noexcept {
  ThreadWake& t = t_wake;
  if (!t.armed) return false;
  Wakes& w = wakes();
  bool woken;
  {
    std::lock_guard g(w.lock);
    (t.prev ? t.prev->next : w.armed) = t.next;
    if (t.next) t.next->prev = t.prev;
    t.armed = false;
    woken = t.woken;
  }
  if (woken) eventfd_drain(t.fd);
  return woken;
}

void poll_wake_sk(Socket* sk) noexcept {
  Wakes& w = wakes();
  std::lock_guard g(w.lock);
  for (ThreadWake* t = w.armed; t; t = t->next) {
    if (t->woken) continue;
    for (nfds_t i = 0; i < t->n; ++i)
      if (registry::peek(t->fds[i].fd) == sk) {
        t->woken = true;
        eventfd_signal(t->fd);
        break;
      }
  }
}

void poll_wake_after_fork_child() noexcept {
  Wakes& w = wakes();
  fork_reset_if_held(w.lock);
  for (ThreadWake* t = w.threads; t; t = t->next_thread) {
    if (t->fd >= 0) registry::close_internal(t->fd);
    t->fd = -1;
    t->listed = false;
  }
  w.threads = nullptr;
  w.armed = nullptr;
}

}  // namespace sockshim
