#include "core/domain/sock_ring.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "core/domain/domain.h"
#include "core/sock/errno_saver.h"
#include "core/sock/fork_reset.h"
#include "core/sock/log.h"
#include "core/sock/real.h"
#include "core/sock/registry.h"

namespace sockshim::domain {
namespace {

// The process's attached rings, for the fork child.
std::mutex g_rings_lock;
SockRing* g_rings = nullptr;

// The bell: its fd and the pid that made it (a fork child makes its own).
std::mutex g_bell_lock;
int g_bell_fd = -1;
pid_t g_bell_pid = 0;

bool pid_alive(pid_t pid) noexcept {
  ErrnoSaver saved;
  return kill(pid, 0) == 0 || errno != ESRCH;
}

// Writes a fresh ring file for cookie under a temporary name and links it in
// as path: 0, or -errno (losing the race to another creator is success).
int create_file(const std::string& dir, const std::string& path, uint64_t cookie, uint32_t capacity,
                const SockAddr* local, const SockAddr* remote) noexcept {
  std::string tmp = dir + "/." + sock_ring_name(cookie) + "." + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return -errno;
  const uint64_t ring_bytes = IngressRing::bytes_for(capacity);
  const uint64_t len = kSockRingHeaderBytes + ring_bytes;
  int r = 0;
  void* base = MAP_FAILED;
  if (fchmod(fd, 0600) != 0 || ftruncate(fd, static_cast<off_t>(len)) != 0)
    r = -errno;
  else if ((base = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED)
    r = -errno;
  real::close(fd);
  if (r == 0) {
    auto* h = static_cast<SockRingFileHeader*>(base);
    h->cookie = cookie;
    h->ring_bytes = ring_bytes;
    if (local && remote) {
      h->local = *local;
      h->remote = *remote;
    }
    r = IngressRing::format(static_cast<char*>(base) + kSockRingHeaderBytes, ring_bytes, capacity);
    std::atomic_ref<uint64_t>(h->magic).store(kSockRingMagic, std::memory_order_release);
  }
  if (base != MAP_FAILED) munmap(base, len);
  if (r == 0 && link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST) r = -errno;
  unlink(tmp.c_str());
  return r;
}

bool same_address(const SockAddr& a, const SockAddr& b) noexcept {
  return a.len > 0 && a.len == b.len && memcmp(&a.addr, &b.addr, a.len) == 0;
}

struct AttachOp {
  SockRing* ring;
  const std::string* dir;
  uint64_t cookie;
  uint32_t capacity;
  bool holder;  // creates the file if missing, and watches the ring
  const SockAddr* local;
  const SockAddr* remote;
  void* base = MAP_FAILED;
  uint64_t len = 0;
};

}  // namespace

std::string sock_ring_name(uint64_t cookie) {
  char name[32];
  snprintf(name, sizeof name, "ring-%016" PRIx64, cookie);
  return name;
}

std::string ring_bell_name(pid_t pid) {
  return "bell-" + std::to_string(pid);
}

SockRing* SockRing::attach(Domain& d, uint64_t cookie, uint32_t capacity, int* err,
                           const SockAddr* local, const SockAddr* remote) noexcept {
  SockRing* s = map_file(d, cookie, capacity, true, err, local, remote);
  if (!s) return nullptr;
  std::lock_guard g(g_rings_lock);
  s->next_ = g_rings;
  if (g_rings) g_rings->prev_ = s;
  g_rings = s;
  return s;
}

SockRing* SockRing::peer(Domain& d, uint64_t cookie) noexcept {
  static std::mutex lock;
  static std::unordered_map<uint64_t, SockRing*>* peers = nullptr;
  std::lock_guard g(lock);
  try {
    if (!peers) peers = new std::unordered_map<uint64_t, SockRing*>;
    if (auto it = peers->find(cookie); it != peers->end()) return it->second;
    int err = 0;
    SockRing* s = map_file(d, cookie, 0, false, &err, nullptr, nullptr);
    if (s) peers->emplace(cookie, s);
    return s;
  } catch (...) {
    return nullptr;
  }
}

SockRing* SockRing::map_file(Domain& d, uint64_t cookie, uint32_t capacity, bool holder, int* err,
                             const SockAddr* local, const SockAddr* remote) noexcept {
  capacity = std::clamp(capacity, kSockRingMinCapacity, kSockRingMaxCapacity);
  SockRing* s = new (std::nothrow) SockRing;
  if (!s) {
    *err = -ENOMEM;
    return nullptr;
  }
  s->cookie_ = cookie;
  s->domain_ = &d;
  // Under the domain's lock: the last watcher's removal of the file cannot
  // come between the open and the watch.
  AttachOp attach_op{s, &d.dir(), cookie, capacity, holder, local, remote};
  int r = d.run(
      [](Arena&, void* ctx) noexcept -> int {
        auto* op = static_cast<AttachOp*>(ctx);
        try {
          const std::string path = *op->dir + "/" + sock_ring_name(op->cookie);
          int fd = -1;
          for (int attempt = 0; attempt < 2 && fd < 0; ++attempt) {
            fd = open(path.c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC);
            if (fd >= 0) break;
            if (errno != ENOENT || attempt == 1 || !op->holder) return -errno;
            if (int c =
                    create_file(*op->dir, path, op->cookie, op->capacity, op->local, op->remote);
                c < 0)
              return c;
          }
          struct stat st;
          int rc = 0;
          if (fstat(fd, &st) != 0)
            rc = -errno;
          else if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) ||
                   static_cast<uint64_t>(st.st_size) <= kSockRingHeaderBytes)
            rc = -EPERM;
          else if ((op->base = mmap(nullptr, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                                    0)) == MAP_FAILED)
            rc = -errno;
          else
            op->len = static_cast<uint64_t>(st.st_size);
          real::close(fd);
          if (rc < 0) return rc;
          auto* h = static_cast<SockRingFileHeader*>(op->base);
          if (std::atomic_ref<uint64_t>(h->magic).load(std::memory_order_acquire) !=
                  kSockRingMagic ||
              h->cookie != op->cookie || h->ring_bytes != op->len - kSockRingHeaderBytes)
            return -EUCLEAN;
          op->ring->hdr_ = h;
          op->ring->map_len_ = op->len;
          if (int a = op->ring->ring_.attach(static_cast<char*>(op->base) + kSockRingHeaderBytes,
                                             h->ring_bytes);
              a < 0)
            return a;
          return !op->holder || op->ring->watch(getpid()) ? 0 : -ENOSPC;
        } catch (...) {
          return -ENOMEM;
        }
      },
      &attach_op);
  if (r < 0) {
    if (!holder && r == -ENOENT) {
      delete s;
      *err = r;
      return nullptr;
    }
    log::warn("domain {}: the ingress ring of socket {} cannot be attached: {}", d.key(), cookie,
              r == -EUCLEAN ? s->ring_.why() : strerror(-r));
    delete s;
    *err = r;
    return nullptr;
  }
  s->ring_.set_notify(&SockRing::ring_bells, s);
  return s;
}

bool SockRing::tell_tcp_written(const SockAddr& local, const SockAddr& remote,
                                uint64_t bytes) noexcept {
  if (!same_address(hdr_->local, remote) || !same_address(hdr_->remote, local)) return false;
  uint64_t cur = hdr_->tcp_written.load(std::memory_order_acquire);
  while (cur < bytes + 1 &&
         !hdr_->tcp_written.compare_exchange_weak(cur, bytes + 1, std::memory_order_acq_rel)) {
  }
  return true;
}

bool SockRing::tcp_written_before(uint64_t* bytes) const noexcept {
  uint64_t told = hdr_->tcp_written.load(std::memory_order_acquire);
  if (told == 0) return false;
  *bytes = told - 1;
  return true;
}

bool SockRing::watch(pid_t pid) noexcept {
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& w : hdr_->watchers) {
      int32_t cur = w.load(std::memory_order_acquire);
      if (cur == pid) return true;
      // A dead process's slot is taken over on the second pass.
      if ((cur == 0 || (pass == 1 && !pid_alive(cur))) &&
          w.compare_exchange_strong(cur, pid, std::memory_order_acq_rel))
        return true;
    }
  }
  return false;
}

void SockRing::detach() noexcept {
  {
    std::lock_guard g(g_rings_lock);
    if (prev_)
      prev_->next_ = next_;
    else if (g_rings == this)
      g_rings = next_;
    if (next_) next_->prev_ = prev_;
  }
  domain_->run(
      [](Arena&, void* ctx) noexcept -> int {
        auto* self = static_cast<SockRing*>(ctx);
        const pid_t me = getpid();
        bool watched = false;
        for (auto& w : self->hdr_->watchers) {
          int32_t cur = w.load(std::memory_order_acquire);
          if (cur == me)
            w.store(0, std::memory_order_release);
          else if (cur != 0 && pid_alive(cur))
            watched = true;
        }
        if (!watched) {
          try {
            unlink((self->domain_->dir() + "/" + sock_ring_name(self->cookie_)).c_str());
          } catch (...) {
          }
        }
        return 0;
      },
      this);
  delete this;
}

SockRing::~SockRing() {
  if (hdr_) munmap(hdr_, map_len_);
}

void SockRing::after_fork_child() noexcept {
  fork_reset_if_held(g_rings_lock);
  fork_reset_if_held(g_bell_lock);
  std::lock_guard g(g_rings_lock);
  for (SockRing* s = g_rings; s; s = s->next_) s->watch(getpid());
}

void SockRing::ring_bells(void* self, uint32_t) noexcept {
  auto* s = static_cast<SockRing*>(self);
  ErrnoSaver saved;
  for (auto& w : s->hdr_->watchers) {
    int32_t pid = w.load(std::memory_order_acquire);
    if (pid <= 0) continue;
    char path[4200];
    snprintf(path, sizeof path, "%s/bell-%d", s->domain_->dir().c_str(), pid);
    // Opened each time: a cached fd would outlive its process, and a new
    // process with the same pid makes a new FIFO.
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      // ENXIO: nobody reads it; the watcher is gone unless it lives.
      if (errno == ENXIO && !pid_alive(pid)) w.compare_exchange_strong(pid, 0);
      continue;
    }
    char one = 1;
    [[maybe_unused]] ssize_t r = real::write(fd, &one, 1);  // EAGAIN: already rung
    real::close(fd);
  }
}

int own_ring_bell() noexcept {
  Domain* d = own_domain();
  if (!d) return -1;
  std::lock_guard g(g_bell_lock);
  const pid_t me = getpid();
  if (g_bell_pid == me && g_bell_fd >= 0) return g_bell_fd;
  // A fork child's inherited fd reads its parent's bell: its own is made.
  if (g_bell_fd >= 0 && g_bell_pid != me) registry::close_internal(g_bell_fd);
  g_bell_fd = -1;
  ErrnoSaver saved;
  try {
    const std::string path = d->dir() + "/" + ring_bell_name(me);
    unlink(path.c_str());  // a dead process's with this pid
    if (mkfifo(path.c_str(), 0600) != 0) return -1;
    // O_RDWR: open at once, and never EOF while no writer has it.
    int fd = open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return -1;
    g_bell_fd = registry::make_internal(fd);
    g_bell_pid = me;
  } catch (...) {
    return -1;
  }
  return g_bell_fd;
}

void drain_bell(int fd) noexcept {
  char buf[256];
  ErrnoSaver saved;
  while (real::read(fd, buf, sizeof buf) == static_cast<ssize_t>(sizeof buf)) {
  }
}

}  // namespace sockshim::domain
