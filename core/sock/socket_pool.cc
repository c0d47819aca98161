#include "core/sock/socket_pool.h"

#include <sys/mman.h>

#include <new>

#include "core/sock/connect_pending.h"
#include "core/sock/sock_hooks.h"

namespace sockshim {
namespace {

std::atomic<Socket*> g_slabs[SocketPool::kMaxSlabs];
std::atomic<uint32_t> g_next_unused{0};
// Free list head: (ABA tag << 32) | (index + 1); 0 in the low half means empty.
std::atomic<uint64_t> g_free_head{0};

}  // namespace

Socket* SocketPool::slab_for(uint32_t index) noexcept {
  uint32_t k = index >> SocketPool::kSlabShift;
  if (k >= SocketPool::kMaxSlabs) return nullptr;
  Socket* slab = g_slabs[k].load(std::memory_order_acquire);
  if (slab) return slab;
  // mmap rather than new: async-signal-safe, and never returned. Its records
  // are constructed when first handed out: a page nobody wrote stays out of
  // the process, so a fork does not copy its page table entry nor the child's
  // exit unmap it (a whole slab is 368 KiB: written at once, it cost a
  // fork-per-connection server 15 to 20 µs per connection here).
  void* mem = mmap(nullptr, sizeof(Socket) * SocketPool::kSlabSize, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return nullptr;
  Socket* fresh = static_cast<Socket*>(mem);
  if (g_slabs[k].compare_exchange_strong(slab, fresh, std::memory_order_acq_rel)) return fresh;
  munmap(mem, sizeof(Socket) * SocketPool::kSlabSize);
  return slab;
}

Socket* SocketPool::slot(uint32_t index) noexcept {
  Socket* slab = g_slabs[index >> kSlabShift].load(std::memory_order_acquire);
  return slab ? &slab[index & (kSlabSize - 1)] : nullptr;
}

uint32_t SocketPool::slab_count() noexcept {
  uint32_t used = g_next_unused.load(std::memory_order_acquire);
  uint32_t n = (used + kSlabSize - 1) >> kSlabShift;
  return n < kMaxSlabs ? n : kMaxSlabs;
}

uint32_t SocketPool::allocated_count() noexcept {
  uint32_t used = g_next_unused.load(std::memory_order_acquire);
  return used < kMaxSlabs * kSlabSize ? used : kMaxSlabs * kSlabSize;
}

Socket* SocketPool::allocate() noexcept {
  Socket* s = nullptr;
  uint64_t head = g_free_head.load(std::memory_order_acquire);
  while (static_cast<uint32_t>(head) != 0) {
    Socket* candidate = slot(static_cast<uint32_t>(head) - 1);
    // A stale read of next_free_ is harmless: the tag makes the exchange fail.
    uint64_t next =
        ((head >> 32) + 1) << 32 | candidate->next_free_.load(std::memory_order_relaxed);
    if (g_free_head.compare_exchange_weak(head, next, std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
      s = candidate;
      break;
    }
  }
  if (!s) {
    uint32_t index = g_next_unused.fetch_add(1, std::memory_order_acq_rel);
    Socket* slab = slab_for(index);
    if (!slab) return nullptr;
    s = new (&slab[index & (kSlabSize - 1)]) Socket();
    s->pool_index_ = index;
  }
  s->cookie = 0;
  s->family = s->type = s->protocol = 0;
  s->nonblocking.store(false, std::memory_order_relaxed);
  s->psock.store(nullptr, std::memory_order_relaxed);
  s->connect_state.store(0, std::memory_order_relaxed);
  s->local = {};
  s->remote = {};
  s->state = TcpState::unknown;
  s->shut_rd = s->shut_wr = false;
  s->refs_.store(1, std::memory_order_release);
  return s;
}

void SocketPool::release(Socket* s) noexcept {
  uint64_t head = g_free_head.load(std::memory_order_relaxed);
  uint64_t next;
  do {
    s->next_free_.store(static_cast<uint32_t>(head), std::memory_order_relaxed);
    next = ((head >> 32) + 1) << 32 | (s->pool_index_ + 1);
  } while (!g_free_head.compare_exchange_weak(head, next, std::memory_order_release,
                                              std::memory_order_relaxed));
}

bool Socket::try_get() noexcept {
  uint32_t r = refs_.load(std::memory_order_relaxed);
  while (r != 0)
    if (refs_.compare_exchange_weak(r, r + 1, std::memory_order_acquire, std::memory_order_relaxed))
      return true;
  return false;
}

void Socket::put() noexcept {
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  // The kernel's last fput: the sockops programs see the close (its storage
  // is still there), then the socket leaves every map, its psock goes and its
  // storage is freed. Whoever gave the socket that state did so holding a
  // reference, so the count's acquire above makes the state visible here.
  if (state != TcpState::unknown) sock_hook_sock_ops(policy::SockOp::state_change, this, -1);
  tcp_connect_forget(this);
  if (psock.load(std::memory_order_acquire)) sock_hook_call(g_sock_hooks.map_close, this);
  if (sk_storage_elems.load(std::memory_order_acquire))
    sock_hook_call(g_sock_hooks.storage_free, this);
  SocketPool::release(this);
}

}  // namespace sockshim
