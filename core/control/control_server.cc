#include "core/control/control_server.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <string>

#include "core/control/control_commands.h"
#include "core/control/protocol.h"
#include "core/sock/errno_saver.h"
#include "core/sock/event_loop.h"
#include "core/sock/log.h"
#include "core/sock/real.h"
#include "core/sock/registry.h"

namespace sockshim::control {
namespace {

// A request must arrive, and its answer leave, within this time; a slow client
// is cut off so it never holds the loop.
constexpr int64_t kClientDeadlineMs = 5000;

struct Client {
  std::string in;
  std::string out;
  size_t sent = 0;
  int64_t deadline_ms = 0;
  bool answered = false;
};

struct Server {
  int listen_fd = -1;
  std::string path;
  pid_t pid = 0;
  std::map<int, Client> clients;  // loop thread only
};

// 0: not configured yet (before start-up, or not wanted); 1: wanted, not yet
// serving; 2: serving, or tried to.
std::atomic<int> g_state{0};
std::atomic<bool> g_wanted{false};
std::mutex g_lock;
Server* g_server = nullptr;  // guarded by g_lock; never freed (hooks run during exit)

int64_t now_ms() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

bool peer_allowed(int fd) noexcept {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (real::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  return cred.uid == geteuid() || cred.uid == 0;
}

void forget_client(Server& server, int fd) noexcept {
  server.clients.erase(fd);
  if (EventLoop* loop = EventLoop::get()) loop->unwatch(fd);
  // Closed by the program already if it is no longer ours: never close its fd.
  if (registry::is_internal(registry::peek(fd))) registry::close_internal(fd);
}

void flush(Server& server, int fd, Client& c) noexcept {
  while (c.sent < c.out.size()) {
    ssize_t n = real::send(fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
    if (n > 0) {
      c.sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      // Wait for writability; the running handler stays alive while replaced.
      if (EventLoop* loop = EventLoop::get()) {
        loop->unwatch(fd);
        loop->watch(fd, EPOLLOUT, [&server, fd](uint32_t) {
          auto it = server.clients.find(fd);
          if (it != server.clients.end()) flush(server, fd, it->second);
        });
      }
      return;
    }
    break;
  }
  forget_client(server, fd);
}

void answer(Server& server, int fd, Client& c, std::string response) noexcept {
  c.answered = true;
  try {
    c.out = std::move(response);
    c.out += '\n';
  } catch (...) {
    forget_client(server, fd);
    return;
  }
  flush(server, fd, c);
}

void on_client(Server& server, int fd) noexcept {
  auto it = server.clients.find(fd);
  if (it == server.clients.end() || it->second.answered) return;
  Client& c = it->second;
  char buf[4096];
  for (;;) {
    ssize_t n = real::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) break;  // EOF or error: answer what arrived
    try {
      c.in.append(buf, static_cast<size_t>(n));
    } catch (...) {
      forget_client(server, fd);
      return;
    }
    if (c.in.size() > kMaxRequestBytes) {
      answer(
          server, fd, c,
          R"({"version":1,"ok":false,"error":{"code":"EMSGSIZE","message":"request larger than 65536 bytes"}})");
      return;
    }
    if (c.in.find('\n') != std::string::npos) break;
  }
  std::string line = c.in.substr(0, c.in.find('\n'));
  if (line.empty()) {
    forget_client(server, fd);
    return;
  }
  answer(server, fd, c, handle_request(line));
}

void on_listen(Server& server) noexcept {
  for (;;) {
    int fd = real::accept4(server.listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;
    if (!peer_allowed(fd)) {
      real::close(fd);  // another user gets nothing, not even an error
      continue;
    }
    fd = registry::make_internal(fd);
    EventLoop* loop = EventLoop::get();
    if (!loop) {
      registry::close_internal(fd);
      return;
    }
    Client& c = server.clients[fd];
    c.deadline_ms = now_ms() + kClientDeadlineMs;
    loop->watch(fd, EPOLLIN | EPOLLRDHUP, [&server, fd](uint32_t) { on_client(server, fd); });
  }
}

// Runs before every wait of the loop: cuts off clients past their deadline.
int expire_clients(Server& server) noexcept {
  int64_t now = now_ms();
  int64_t next = -1;
  for (auto it = server.clients.begin(); it != server.clients.end();) {
    int fd = it->first;
    int64_t deadline = it->second.deadline_ms;
    ++it;
    if (deadline <= now)
      forget_client(server, fd);
    else if (next < 0 || deadline - now < next)
      next = deadline - now;
  }
  return static_cast<int>(next);
}

// Binds <dir>/<pid>.sock; returns the listening fd (one of ours) or -1.
int bind_control_socket(Server& server) noexcept {
  std::string path;
  try {
    std::string dir = runtime_dir();
    if (std::string why = prepare_runtime_dir(dir); !why.empty()) {
      log::error("no control socket: {}", why);
      return -1;
    }
    path = control_socket_path(dir, getpid());
  } catch (const std::bad_alloc&) {
    log::error("no control socket: out of memory");
    return -1;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    log::error("no control socket: path {} is too long for a unix socket", path);
    return -1;
  }
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = real::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  unlink(path.c_str());  // left by an earlier process with this pid
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      chmod(path.c_str(), 0600) != 0 || real::listen(fd, SOMAXCONN) != 0) {
    log::error("no control socket at {}: {}", path, strerror(errno));
    real::close(fd);
    return -1;
  }
  server.path = std::move(path);
  server.pid = getpid();
  return registry::make_internal(fd);
}

void serve(Server& server) noexcept {
  EventLoop* loop = EventLoop::get();
  if (!loop) return;
  server.listen_fd = bind_control_socket(server);
  if (server.listen_fd < 0) return;
  loop->watch(server.listen_fd, EPOLLIN, [&server](uint32_t) { on_listen(server); });
  loop->set_tick([&server] { return expire_clients(server); });
  log::info("control socket {}", server.path);
}

}  // namespace

void configure(bool policy_loaded) noexcept {
  const char* env = getenv("SOCKSHIM_CONTROL");
  bool wanted = policy_loaded;
  if (env && strcmp(env, "on") == 0)
    wanted = true;
  else if (env && strcmp(env, "off") == 0)
    wanted = false;
  else if (env && *env)
    log::warn("SOCKSHIM_CONTROL={} is not one of on, off; serving a control socket {}", env,
              wanted ? "because a policy is loaded" : "only with a policy");
  g_wanted.store(wanted, std::memory_order_relaxed);
  g_state.store(wanted ? 1 : 0, std::memory_order_release);
}

void ensure_started() noexcept {
  if (g_state.load(std::memory_order_acquire) != 1) [[likely]]
    return;
  if (registry::in_vfork_child()) return;
  std::lock_guard g(g_lock);
  if (g_state.load(std::memory_order_relaxed) != 1) return;
  ErrnoSaver saved;
  g_server = new (std::nothrow) Server;
  if (g_server) serve(*g_server);
  g_state.store(2, std::memory_order_release);
}

void after_fork_child() noexcept {
  new (&g_lock) std::mutex();
  if (g_server && g_server->listen_fd >= 0) registry::close_internal(g_server->listen_fd);
  g_server = nullptr;  // the parent's; its clients are the parent's too
  g_state.store(g_wanted.load(std::memory_order_relaxed) ? 1 : 0, std::memory_order_release);
}

void check_internal_fds() noexcept {
  std::lock_guard g(g_lock);
  Server* server = g_server;
  if (!server || server->listen_fd < 0) return;
  if (registry::is_internal(registry::peek(server->listen_fd))) return;
  log::warn("the program closed the control socket; re-creating {}", server->path);
  EventLoop* loop = EventLoop::get();
  if (!loop) return;
  loop->unwatch(server->listen_fd);
  server->listen_fd = bind_control_socket(*server);
  if (server->listen_fd >= 0)
    loop->watch(server->listen_fd, EPOLLIN, [server](uint32_t) { on_listen(*server); });
}

}  // namespace sockshim::control

// The socket file goes with the process that made it (not with a fork child).
__attribute__((destructor)) static void sockshim_remove_control_socket() {
  using namespace sockshim::control;
  if (g_server && g_server->pid == getpid() && !g_server->path.empty())
    unlink(g_server->path.c_str());
}
