#include "core/domain/domain.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/domain/shared_policy.h"
#include "core/domain/shared_storage.h"
#include "core/sock/log.h"
#include "core/sock/real.h"

namespace sockshim::domain {
namespace {

constexpr size_t kMaxNameBytes = 255;

uint64_t fnv1a64(const std::string& s) noexcept {
  uint64_t h = 0xcbf29ce484222325;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3;
  return h;
}

std::string own_comm() {
  char buf[32] = "";
  int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n = real::read(fd, buf, sizeof buf - 1);
    real::close(fd);
    buf[n > 0 ? n : 0] = '\0';
  }
  buf[strcspn(buf, "\n")] = '\0';
  return buf;
}

// The process's domain: set at start-up and never freed (threads may still
// use it while the process exits); its policy path is kept for fork children.
std::atomic<Domain*> g_domain{nullptr};
std::string* g_policy = nullptr;
std::string* g_key = nullptr;
std::string* g_dir = nullptr;
std::string* g_error = nullptr;  // why attach failed
std::string* g_comm = nullptr;   // a fork child's is its parent's
Holder g_self;                   // pid and start time, as joined

// When this thread last began a fork: a fork child's start time lies after it.
thread_local uint64_t t_fork_ns = 0;

// fresh: a fork child, which has no slot yet; parent: its parent.
int join_self(Domain* d, bool fresh, const Holder* parent = nullptr) noexcept {
  try {
    if (!g_comm) g_comm = new std::string(own_comm());
    uint64_t start = fresh ? start_time_between(t_fork_ns, boottime_ns()) : 0;
    if (!start) start = process_start_time(getpid());
    g_self = {getpid(), start, -1};
    return d->join(g_self.pid, g_self.start_time, g_policy ? *g_policy : "", g_comm->c_str(), fresh,
                   parent);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
}

// Why joining d failed with r, as a sentence.
std::string join_error(Domain* d, int r) {
  if (r == -ENOSPC)
    return "its member table is full (" + std::to_string(kMaxMembers) + " live members)";
  return r == -EUCLEAN || r == -ETIMEDOUT ? d->why() : strerror(-r);
}

uint64_t cookie_of(int fd) noexcept {
  uint64_t c = 0;
  socklen_t len = sizeof c;
  return fd >= 0 && real::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len) == 0 ? c : 0;
}

// The process's sockets by cookie (the lowest fd of each), read from
// /proc/self/fd once an exec'd image finds a recorded fd moved or closed.
struct ExecFds {
  bool scanned = false;
  std::vector<std::pair<uint64_t, int>> by_cookie;

  void scan() noexcept {
    scanned = true;
    DIR* dir = opendir("/proc/self/fd");
    if (!dir) return;
    int own = dirfd(dir);
    try {
      while (dirent* e = readdir(dir)) {
        char* end = nullptr;
        long fd = strtol(e->d_name, &end, 10);
        if (*end || end == e->d_name || fd == own) continue;
        if (uint64_t c = cookie_of(static_cast<int>(fd)))
          by_cookie.emplace_back(c, static_cast<int>(fd));
      }
    } catch (const std::bad_alloc&) {
    }
    closedir(dir);
  }
  // fd if it still refers to cookie, else the process's lowest fd of it, else -1.
  static int fd_of(int fd, uint64_t cookie, void* ctx) noexcept {
    if (cookie_of(fd) == cookie) return fd;
    auto* self = static_cast<ExecFds*>(ctx);
    if (!self->scanned) self->scan();
    int best = -1;
    for (auto [c, f] : self->by_cookie)
      if (c == cookie && (best < 0 || f < best)) best = f;
    return best;
  }
};

// An exec'd image keeps holding the sockets it inherited, at the fds they
// now have, and lets go of the ones the exec closed (O_CLOEXEC); at a first
// start it holds none.
void after_exec(Domain* d) noexcept {
  struct Ctx {
    Holder self;
    ExecFds fds;
  } ctx{g_self, {}};
  d->run(
      [](Arena& a, void* p) {
        auto* c = static_cast<Ctx*>(p);
        // Its sk_storage holds go: the new image finds the values again on use.
        if (int r = storage_holders_drop_dead(a, &c->self, 1); r < 0) return r;
        return sock_holders_after_exec(a, c->self.pid, c->self.start_time, ExecFds::fd_of, &c->fds);
      },
      &ctx);
}

void attach_failed(const std::string& key, const std::string& why) {
  if (!g_error) g_error = new std::string;
  *g_error = why;
  log::error("domain {}: {}; running without a domain (pass-through)", key, why);
}

}  // namespace

std::string domain_key(const char* name, const char* policy_path, std::string* why) {
  if (name && *name) {
    size_t n = strlen(name);
    bool printable = true;
    for (const char* p = name; *p; ++p)
      printable &= static_cast<unsigned char>(*p) >= 0x20 && *p != 0x7f;
    if (n > kMaxNameBytes || !printable) {
      *why = "SOCKSHIM_DOMAIN must be 1 to 255 printable characters";
      return {};
    }
    return std::string("name:") + name;
  }
  if (!policy_path || !*policy_path) return {};
  char real_path[PATH_MAX];
  if (!realpath(policy_path, real_path)) {
    *why = std::string("cannot resolve the policy path ") + policy_path + ": " + strerror(errno);
    return {};
  }
  return std::string("policy:") + real_path;
}

std::string domain_dir(const std::string& runtime_dir, const std::string& key) {
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(fnv1a64(key)));
  return runtime_dir + "/domain-" + hex;
}

Domain::Domain(std::string dir, std::string key, MappedFile file) noexcept
    : dir_(std::move(dir)),
      key_(std::move(key)),
      path_(dir_ + "/" + kArenaFileName),
      file_(file),
      arena_(file.base, file.size) {}

Domain::~Domain() {
  munmap(file_.base, file_.size);
}

Domain* Domain::open(const std::string& dir, const std::string& key, std::string* why) noexcept {
  try {
    if (*why = make_private_dir(dir); !why->empty()) return nullptr;
    MappedFile file;
    if (*why = map_arena(dir, key, &file); !why->empty()) return nullptr;
    auto* d = new Domain(dir, key, file);
    int r = d->locked([d] {
      if (int c = d->arena_.check(d->key_); c < 0) return c;
      std::vector<uint64_t> reached;
      return member_table_checked(d->arena_) && shared_maps_check(d->arena_, false, &reached) &&
                     shared_storage_check(d->arena_, false, &reached) &&
                     domain_policy_check(d->arena_, &reached)
                 ? 0
                 : -EUCLEAN;
    });
    if (r < 0) {
      *why = d->why();
      delete d;
      return nullptr;
    }
    d->opened_ = true;
    return d;
  } catch (const std::bad_alloc&) {
    *why = "out of memory";
    return nullptr;
  }
}

int Domain::fail(const char* what) noexcept {
  bool expected = false;
  if (failed_.compare_exchange_strong(expected, true, std::memory_order_acq_rel)) {
    snprintf(why_, sizeof why_, "%s: %s", path_.c_str(), what);
    if (opened_)
      log::error("domain {} failed closed: {}; running without it (pass-through)", key_, why_);
  }
  return -EUCLEAN;
}

std::string Domain::why() const {
  return why_;
}

uint64_t Domain::generation() const noexcept {
  return arena_.header()->generation.load(std::memory_order_acquire);
}

template <typename Op>
int Domain::locked(Op&& op) noexcept {
  if (failed()) return -EUCLEAN;
  try {
    if (std::string why = still_mapped(path_, file_); !why.empty()) return fail(why.c_str());
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  if (arena_.check_header(key_) < 0) return fail(arena_.why());
  ArenaHeader* h = arena_.header();
  int r = lock_repaired(h->lock, kLockTimeoutMs, [this] {
    log::warn("domain {}: a member died holding its lock; checking and repairing", key_);
    return members_repair(arena_) && arena_.check(key_) == 0;
  });
  switch (r) {
    case 0:
      break;
    case -ETIMEDOUT:
      snprintf(why_, sizeof why_, "%s: the lock was not released within %d ms", path_.c_str(),
               kLockTimeoutMs);
      log::warn("domain {}: {}", key_, why_);
      return r;
    case -EUCLEAN:
      return fail("the lock's memory was overwritten");
    case -ENOTRECOVERABLE:
      return fail(arena_.why()[0]
                      ? arena_.why()
                      : "the lock is unrecoverable (a repair after a dead member failed)");
    default:
      return fail(strerror(-r));
  }
  r = op();
  h->lock.unlock();
  if (r == -EUCLEAN) return fail(arena_.why());
  return r;
}

int Domain::join(pid_t pid, uint64_t start_time, const std::string& policy, const char* comm,
                 bool fresh, const Holder* parent) noexcept {
  int r = locked([&] {
    int slot = member_join(arena_, pid, start_time, policy, comm, fresh);
    if (slot < 0 || !parent) return slot;
    // Short of arena memory the child still joins, holding fewer sockets.
    int i = sock_holders_inherit(arena_, *parent, {pid, start_time, -1});
    if (i != -EUCLEAN) i = storage_holders_inherit(arena_, *parent, {pid, start_time, -1});
    return i == -EUCLEAN ? i : slot;
  });
  return r < 0 ? r : 0;
}

int Domain::run(int (*op)(Arena& arena, void* ctx), void* ctx) noexcept {
  return locked([&] { return op(arena_, ctx); });
}

int Domain::members(std::vector<Member>* out) noexcept {
  return locked([&] { return members_list(arena_, out); });
}

void attach(const std::string& runtime_dir, const char* policy_path) noexcept {
  try {
    std::string why;
    std::string key = domain_key(getenv("SOCKSHIM_DOMAIN"), policy_path, &why);
    if (key.empty()) {
      if (!why.empty()) attach_failed("(none)", why);
      return;
    }
    g_key = new std::string(key);
    g_dir = new std::string(domain_dir(runtime_dir, key));
    g_policy = new std::string;
    char real_path[PATH_MAX];
    if (policy_path && realpath(policy_path, real_path)) *g_policy = real_path;
    if (why = make_private_dir(runtime_dir); !why.empty()) return attach_failed(key, why);
    Domain* d = Domain::open(*g_dir, key, &why);
    if (!d) return attach_failed(key, why);
    if (int r = join_self(d, false); r < 0) return attach_failed(key, join_error(d, r));
    g_domain.store(d, std::memory_order_release);
    after_exec(d);
    log::info("domain {} attached at {}", key, *g_dir);
  } catch (const std::bad_alloc&) {
  }
}

void before_fork() noexcept {
  if (g_domain.load(std::memory_order_relaxed)) t_fork_ns = boottime_ns();
}

void after_fork_child() noexcept {
  Domain* d = g_domain.load(std::memory_order_acquire);
  if (!d) return;
  Holder parent = g_self;
  if (int r = join_self(d, true, &parent); r < 0) {
    g_domain.store(nullptr, std::memory_order_release);
    try {
      attach_failed(d->key(), join_error(d, r));
    } catch (const std::bad_alloc&) {
    }
  }
}

Domain* own_domain() noexcept {
  return g_domain.load(std::memory_order_acquire);
}

Holder own_holder() noexcept {
  return g_self;
}

DomainState domain_state() {
  DomainState out;
  if (!g_key) return out;
  out.key = *g_key;
  out.dir = *g_dir;
  Domain* d = g_domain.load(std::memory_order_acquire);
  if (!d) {
    out.error = g_error ? *g_error : "not attached";
    return out;
  }
  if (int r = d->members(&out.members); r < 0)
    out.error = r == -EUCLEAN || r == -ETIMEDOUT ? d->why() : strerror(-r);
  out.generation = d->generation();
  return out;
}

}  // namespace sockshim::domain
