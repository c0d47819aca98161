#include "core/psock/psock_ext.h"

#include <errno.h>

#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "core/sock/real.h"
#include "core/sock/registry.h"
#include "core/rx/sk_psock_rx.h"
#include "core/rx/skmsg_ingress.h"
#include "core/readiness/skmsg_poll.h"

namespace sockshim {

// The state beside one psock, for the psock generation it was last reset for.
struct PsockExtSlot {
  std::atomic<uint64_t> generation{0};
  PsockExt ext;
};

namespace {

using Slot = PsockExtSlot;

struct ExtTable {
  std::mutex lock;
  std::unordered_map<const Psock*, Slot*> by_psock;  // slots are never freed, as psocks are not
};

// Leaked on purpose: sends may run while the process exits.
ExtTable& table() noexcept {
  static ExtTable* t = new ExtTable;
  return *t;
}

// The psock p was before is gone: what it held goes with it.
void reset(PsockExt& e) noexcept {
  e.eval = SkEval::none;
  e.sk_redir = nullptr;
  e.redir_cookie = 0;
  e.redir_ingress = false;
  e.cork = policy::SkMsg();
  e.cork_alloc = false;
  e.stats.reset();
  if (e.event_fd >= 0) {
    psock_poll_forget(e.event_fd);
    real::close(e.event_fd);
  }
  e.event_fd = -1;
  e.event_ready = false;
  e.rcvbuf.store(0, std::memory_order_relaxed);
  e.fd_hint.store(-1, std::memory_order_relaxed);
  sk_psock_rx_reset(e);
}

}  // namespace

std::atomic<bool> g_ingress_used{false};

int psock_ext_init(Psock* p) noexcept {
  if (p->ext_slot.load(std::memory_order_acquire)) return 0;
  auto* slot = new (std::nothrow) Slot;
  if (!slot) return -ENOMEM;
  slot->generation = p->generation.load(std::memory_order_relaxed);
  ExtTable& t = table();
  try {
    std::lock_guard g(t.lock);
    t.by_psock.emplace(p, slot);
  } catch (const std::bad_alloc&) {
    delete slot;
    return -ENOMEM;
  }
  p->ext_slot.store(slot, std::memory_order_release);
  return 0;
}

PsockExt& psock_ext(Psock* p) noexcept {
  uint64_t gen = p->generation.load(std::memory_order_relaxed);
  // The psock keeps its slot (psock_ext_init): a send or read finds it without
  // the table lock.
  Slot* slot = p->ext_slot.load(std::memory_order_acquire);
  if (slot->generation.load(std::memory_order_acquire) == gen) return slot->ext;
  std::lock_guard g(table().lock);
  if (slot->generation.load(std::memory_order_relaxed) != gen) {
    // Nobody uses the old psock's state: every user held a reference on it.
    std::lock_guard tx(slot->ext.tx_lock);
    reset(slot->ext);
    slot->generation.store(gen, std::memory_order_release);
  }
  return slot->ext;
}

int socket_fd(Socket* sk) noexcept {
  Psock* p = sk->psock.load(std::memory_order_acquire);
  PsockExt* e = p ? &psock_ext(p) : nullptr;
  if (e) {
    int hint = e->fd_hint.load(std::memory_order_relaxed);
    if (hint >= 0 && registry::peek(hint) == sk) return hint;
  }
  int hi = registry::high_water();
  for (int fd = 0; fd <= hi; ++fd)
    if (registry::peek(fd) == sk) {
      if (e) e->fd_hint.store(fd, std::memory_order_relaxed);
      return fd;
    }
  return -1;
}

void psock_ext_before_fork() noexcept {
  if (!g_ingress_used.load(std::memory_order_relaxed)) return;
  // Referenced under the table lock, claimed after it: a last put takes it.
  std::vector<PsockRef> live;
  {
    ExtTable& t = table();
    std::lock_guard g(t.lock);
    try {
      live.reserve(t.by_psock.size());
    } catch (...) {
      return;  // the parents keep their datagrams, as they keep a stream's bytes
    }
    for (auto& [p, slot] : t.by_psock) {
      auto* psock = const_cast<Psock*>(p);
      if (psock->sk() && psock->sk()->type == SOCK_DGRAM && psock_try_get(psock))
        live.emplace_back(psock);
    }
  }
  for (const PsockRef& p : live) sk_msg_fork_claims(p.get());
}

void psock_ext_after_fork_child() noexcept {
  ExtTable& t = table();
  new (&t.lock) std::mutex();
  sk_psock_rx_after_fork_child();
  for (auto& [p, slot] : t.by_psock) {
    new (&slot->ext.tx_lock) std::mutex();
    new (&slot->ext.sk_fd_lock) std::mutex();
    new (&slot->ext.waiters_lock) std::mutex();
    auto* psock = const_cast<Psock*>(p);
    bool live = psock->refcnt() > 0 && psock->generation.load(std::memory_order_relaxed) ==
                                           slot->generation.load(std::memory_order_relaxed);
    sk_psock_rx_fork_child(live ? psock : nullptr, slot->ext);
  }
}

}  // namespace sockshim
