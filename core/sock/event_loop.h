// The shim's one background thread: an epoll loop that serves the control socket
// (and, later, the receive engine). Started on first use; a fork child starts its
// own. Handlers run on the loop thread.
#pragma once

#include <stdint.h>

#include <functional>

namespace sockshim {

class EventLoop {
 public:
  using Handler = std::function<void(uint32_t events)>;

  // The running loop, started if needed; nullptr if it cannot start.
  static EventLoop* get() noexcept;

  // fd must be one of the shim's own (registry::make_internal). Thread-safe.
  bool watch(int fd, uint32_t events, Handler handler) noexcept;
  void unwatch(int fd) noexcept;
  // Runs task on the loop thread.
  void post(std::function<void()> task) noexcept;
  // tick runs on the loop thread before every wait and returns how long the loop
  // may sleep (ms, -1 for ever): the way deadlines are kept.
  void set_tick(std::function<int()> tick) noexcept;

  // After fork(), in the child: the thread is gone; start afresh on next use.
  static void after_fork_child() noexcept;
  // One of the shim's fds was closed by the program: rebuild what is gone.
  static void check_internal_fds() noexcept;

  bool on_loop_thread() const noexcept;

 private:
  struct State;
  explicit EventLoop(State* state) noexcept : state_(state) {}
  static EventLoop* start() noexcept;
  static void* thread_main(void* self) noexcept;
  void run() noexcept;
  State* state_;
};

}  // namespace sockshim
