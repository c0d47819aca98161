#include "core/sock/event_loop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/sock/errno_saver.h"
#include "core/sock/log.h"
#include "core/sock/real.h"
#include "core/sock/registry.h"

namespace sockshim {

struct EventLoop::State {
  int epfd = -1;
  int wakefd = -1;
  pthread_t thread{};
  std::mutex mu;
  std::unordered_map<int, std::pair<uint32_t, std::shared_ptr<Handler>>> handlers;
  std::vector<std::function<void()>> tasks;
  std::function<int()> tick;
  std::atomic<bool> retired{false};
};

namespace {

std::atomic<EventLoop*> g_loop{nullptr};
std::mutex g_start_lock;

void wake(int wakefd) noexcept {
  uint64_t one = 1;
  ErrnoSaver saved;
  (void)!real::write(wakefd, &one, sizeof one);
}

}  // namespace

EventLoop* EventLoop::get() noexcept {
  EventLoop* loop = g_loop.load(std::memory_order_acquire);
  if (loop) [[likely]]
    return loop;
  std::lock_guard g(g_start_lock);
  loop = g_loop.load(std::memory_order_relaxed);
  if (!loop) {
    loop = start();
    g_loop.store(loop, std::memory_order_release);
  }
  return loop;
}

EventLoop* EventLoop::start() noexcept {
  ErrnoSaver saved;
  int epfd = real::epoll_create1(EPOLL_CLOEXEC);
  int wakefd = epfd >= 0 ? eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) : -1;
  if (wakefd < 0) {
    log::error("event loop: cannot create its fds: {}", strerror(errno));
    if (epfd >= 0) real::close(epfd);
    return nullptr;
  }
  auto* state = new (std::nothrow) State;
  auto* loop = state ? new (std::nothrow) EventLoop(state) : nullptr;
  if (!loop) {
    delete state;
    real::close(epfd);
    real::close(wakefd);
    return nullptr;
  }
  state->epfd = registry::make_internal(epfd);
  state->wakefd = registry::make_internal(wakefd);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = state->wakefd;
  real::epoll_ctl(state->epfd, EPOLL_CTL_ADD, state->wakefd, &ev);

  // The loop thread takes no signals: they belong to the program's threads.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = pthread_create(&state->thread, nullptr, thread_main, loop);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (err != 0) {
    log::error("event loop: cannot start its thread: {}", strerror(err));
    registry::close_internal(state->epfd);
    registry::close_internal(state->wakefd);
    delete loop;
    delete state;
    return nullptr;
  }
  pthread_detach(state->thread);
  return loop;
}

void* EventLoop::thread_main(void* self) noexcept {
  // Named by itself: glibc names another thread through /proc/self/task/TID/comm,
  // and those /proc dentries made reaping a fork child that started a loop
  // cost more than the child's whole connection (d_walk under wait4).
  pthread_setname_np(pthread_self(), "sockshim");
  static_cast<EventLoop*>(self)->run();
  return nullptr;
}

bool EventLoop::watch(int fd, uint32_t events, Handler handler) noexcept {
  try {
    auto h = std::make_shared<Handler>(std::move(handler));
    std::lock_guard g(state_->mu);
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (real::epoll_ctl(state_->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) return false;
    state_->handlers[fd] = {events, std::move(h)};
    return true;
  } catch (...) {
    return false;
  }
}

void EventLoop::unwatch(int fd) noexcept {
  std::lock_guard g(state_->mu);
  if (state_->handlers.erase(fd)) real::epoll_ctl(state_->epfd, EPOLL_CTL_DEL, fd, nullptr);
}

void EventLoop::post(std::function<void()> task) noexcept {
  try {
    std::lock_guard g(state_->mu);
    state_->tasks.push_back(std::move(task));
  } catch (...) {
    return;
  }
  wake(state_->wakefd);
}

void EventLoop::set_tick(std::function<int()> tick) noexcept {
  post([this, t = std::move(tick)]() mutable { state_->tick = std::move(t); });
}

bool EventLoop::on_loop_thread() const noexcept {
  return pthread_equal(pthread_self(), state_->thread);
}

void EventLoop::run() noexcept {
  epoll_event events[64];
  while (!state_->retired.load(std::memory_order_acquire)) {
    int timeout = state_->tick ? state_->tick() : -1;
    int n = real::epoll_wait(state_->epfd, events, 64, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      log::error("event loop: epoll_wait: {}", strerror(errno));
      return;
    }
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == state_->wakefd) {
        uint64_t count;
        (void)!real::read(fd, &count, sizeof count);
        continue;
      }
      std::shared_ptr<Handler> h;
      {
        std::lock_guard g(state_->mu);
        auto it = state_->handlers.find(fd);
        if (it != state_->handlers.end()) h = it->second.second;
      }
      if (h) (*h)(events[i].events);
    }
    std::vector<std::function<void()>> tasks;
    {
      std::lock_guard g(state_->mu);
      tasks.swap(state_->tasks);
    }
    for (auto& task : tasks) task();
  }
}

void EventLoop::after_fork_child() noexcept {
  // The parent's thread does not exist here and its lock may be held: leak the
  // old state, close our copies of its fds (the parent keeps its own).
  EventLoop* old = g_loop.exchange(nullptr, std::memory_order_acq_rel);
  new (&g_start_lock) std::mutex();
  if (old) {
    registry::close_internal(old->state_->epfd);
    registry::close_internal(old->state_->wakefd);
  }
}

void EventLoop::check_internal_fds() noexcept {
  EventLoop* loop = g_loop.load(std::memory_order_acquire);
  if (!loop) return;
  State* s = loop->state_;
  bool epfd_ok = registry::is_internal(registry::peek(s->epfd));
  bool wakefd_ok = registry::is_internal(registry::peek(s->wakefd));
  if (epfd_ok && wakefd_ok) return;
  log::warn("the program closed the shim's event loop fds; starting a new loop");
  // A new loop takes over every watched fd that is still ours; the old thread
  // exits when woken, or stays blocked on a loop nobody can reach.
  std::lock_guard g(g_start_lock);
  EventLoop* fresh = start();
  if (!fresh) return;
  {
    std::lock_guard sg(s->mu);
    for (auto& [fd, entry] : s->handlers) {
      if (!registry::is_internal(registry::peek(fd))) continue;
      if (epfd_ok) real::epoll_ctl(s->epfd, EPOLL_CTL_DEL, fd, nullptr);
      fresh->watch(fd, entry.first, *entry.second);
    }
    s->handlers.clear();
    if (s->tick) fresh->set_tick(s->tick);
  }
  s->retired.store(true, std::memory_order_release);
  if (wakefd_ok) wake(s->wakefd);
  g_loop.store(fresh, std::memory_order_release);
}

}  // namespace sockshim
