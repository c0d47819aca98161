#include "core/maps/sk_storage.h"

#include <errno.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "core/domain/domain_storage.h"
#include "core/sock/sock_query.h"
#include "core/sock/socket.h"

namespace sockshim {

namespace {

// Every live SkStorage map, so a closing socket can find its values. A socket
// with no value (sk_storage_elems == 0) never takes this lock.
struct Maps {
  std::mutex lock;
  std::vector<SkStorage*> maps;
};
Maps& live_maps() noexcept {
  static Maps* m = new Maps;  // leaked: sockets close while the process exits
  return *m;
}

int read_fd(const void* key) noexcept {
  int fd;
  std::memcpy(&fd, key, sizeof fd);
  return fd;
}

uint32_t slot_of(const Socket* sk) noexcept {
  return sk->pool_index() & (SocketPool::kSlabSize - 1);
}

}  // namespace

SkStorage::SkStorage(policy::MapSpec spec)
    : BpfMap(std::move(spec)), chunks_(new std::atomic<Chunk*>[SocketPool::kMaxSlabs]()) {
  Maps& m = live_maps();
  std::lock_guard g(m.lock);
  m.maps.push_back(this);
}

SkStorage::~SkStorage() {
  // Under the registry lock, so no closing socket is in the middle of erasing.
  Maps& m = live_maps();
  std::lock_guard g(m.lock);
  std::erase(m.maps, this);
  for (uint32_t k = 0; k < SocketPool::kMaxSlabs; ++k) {
    Chunk* c = chunks_[k].load(std::memory_order_acquire);
    if (!c) continue;
    for (uint32_t i = 0; i < SocketPool::kSlabSize; ++i)
      if (Elem* e = c->elems[i]) {
        SocketPool::slot(k << SocketPool::kSlabShift | i)
            ->sk_storage_elems.fetch_sub(1, std::memory_order_relaxed);
        ::operator delete(e);
      }
    delete c;
  }
}

void SkStorage::after_fork_child() noexcept {
  for (uint32_t k = 0; k < SocketPool::kMaxSlabs; ++k)
    if (Chunk* c = chunks_[k].load(std::memory_order_acquire)) c->lock.reset();
}

void sk_storage_after_fork_child() noexcept {
  new (&live_maps().lock) std::mutex();
}

SkStorage::Chunk* SkStorage::chunk(const Socket* sk, bool create) noexcept {
  std::atomic<Chunk*>& slot = chunks_[sk->pool_index() >> SocketPool::kSlabShift];
  Chunk* c = slot.load(std::memory_order_acquire);
  if (c || !create) return c;
  Chunk* fresh = new (std::nothrow) Chunk;
  if (!fresh) return nullptr;
  if (slot.compare_exchange_strong(c, fresh, std::memory_order_acq_rel)) return fresh;
  delete fresh;
  return c;
}

SkStorage::Elem* SkStorage::create_elem(Socket* sk, Elem** slot, const void* init) noexcept {
  void* mem = ::operator new(sizeof(Elem) + value_size(), std::nothrow);
  if (!mem) return nullptr;
  Elem* e = new (mem) Elem{sk->cookie, {}};
  if (init)
    std::memcpy(e->value(), init, value_size());
  else
    std::memset(e->value(), 0, value_size());
  if (*slot) ::operator delete(*slot);  // a stale value of a recycled record
  *slot = e;
  sk->sk_storage_elems.fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  return e;
}

bool SkStorage::in_domain() const noexcept {
  return shared_ && domain::domain_storage_active();
}

SkStorage::Elem* SkStorage::held_elem(Socket* sk, Elem** slot, bool create, int* err) noexcept {
  *err = 0;
  if (*slot && (*slot)->cookie == sk->cookie && (*slot)->held.rec) return *slot;
  domain::ValueRef ref;
  const policy::MapSpec& s = spec();
  int r = domain::domain_storage_hold({s.name, s.value_size, s.flags}, sk->cookie, create, &ref);
  if (r < 0) {
    *err = r;
    return nullptr;
  }
  Elem* e = new (std::nothrow) Elem{sk->cookie, ref};
  if (!e) {
    *err = -ENOMEM;
    return nullptr;
  }
  if (*slot) ::operator delete(*slot);  // stale, or the process's own from before the domain
  *slot = e;
  sk->sk_storage_elems.fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  return e;
}

int SkStorage::update(Socket* sk, const void* value, uint64_t flags) noexcept {
  // No sk_storage map here has a bpf_spin_lock, so BPF_F_LOCK is refused too.
  if ((flags & ~BPF_F_LOCK) > BPF_EXIST || (flags & BPF_F_LOCK)) return -EINVAL;
  const bool shared = in_domain();
  Chunk* c = chunk(sk, shared || flags != BPF_EXIST);
  if (!c) return flags == BPF_EXIST ? -ENOENT : -ENOMEM;
  std::lock_guard g(c->lock);
  Elem*& slot = c->elems[slot_of(sk)];
  if (shared) {
    int err = 0;
    Elem* e = held_elem(sk, &slot, flags != BPF_EXIST, &err);
    if (!e) return err == -ENOENT || err == -ENOMEM ? err : -ENOMEM;
    return domain::domain_storage_write(e->held, value, flags);
  }
  Elem* e = own_elem(sk, slot);
  if (e && flags == BPF_NOEXIST) return -EEXIST;
  if (!e && flags == BPF_EXIST) return -ENOENT;
  if (e) {
    std::memcpy(e->value(), value, value_size());
    return 0;
  }
  return create_elem(sk, &slot, value) ? 0 : -ENOMEM;
}

int SkStorage::lookup(const Socket* sk, void* value) noexcept {
  const bool shared = in_domain();
  Chunk* c = chunk(sk, shared);
  if (!c) return -ENOENT;
  std::lock_guard g(c->lock);
  Elem*& slot = c->elems[slot_of(sk)];
  const unsigned char* v = nullptr;
  if (shared) {
    int err = 0;
    // A lookup holds no reference to sk that it may give to the domain; the
    // record is sk's own (the caller holds a reference), so this is safe.
    if (Elem* e = held_elem(const_cast<Socket*>(sk), &slot, false, &err)) v = e->held.current();
  } else if (Elem* e = own_elem(sk, slot)) {
    v = e->value();
  }
  if (!v) return -ENOENT;
  std::memcpy(value, v, value_size());
  return 0;
}

int SkStorage::remove(Socket* sk) noexcept {
  if (!in_domain()) return erase(sk) ? 0 : -ENOENT;
  Chunk* c = chunk(sk, true);
  if (!c) return -ENOENT;
  std::lock_guard g(c->lock);
  int err = 0;
  Elem* e = held_elem(sk, &c->elems[slot_of(sk)], false, &err);
  return e ? domain::domain_storage_delete(e->held) : -ENOENT;
}

// The socket's last reference went (or a local delete): its slot goes, and
// for a domain's value this process's hold on it.
bool SkStorage::erase(Socket* sk) noexcept {
  Chunk* c = chunk(sk, false);
  if (!c) return false;
  uint64_t held = 0;
  {
    std::lock_guard g(c->lock);
    Elem*& slot = c->elems[slot_of(sk)];
    if (!slot || slot->cookie != sk->cookie) return false;
    if (slot->held.rec) held = sk->cookie;
    ::operator delete(slot);
    slot = nullptr;
    sk->sk_storage_elems.fetch_sub(1, std::memory_order_relaxed);
    count_.fetch_sub(1, std::memory_order_relaxed);
  }
  if (held) domain::domain_storage_closed(held);
  return true;
}

unsigned char* SkStorage::get(Socket* sk, bool create, const void* init) noexcept {
  const bool shared = in_domain();
  Chunk* c = chunk(sk, create || shared);
  if (!c) return nullptr;
  std::lock_guard g(c->lock);
  Elem*& slot = c->elems[slot_of(sk)];
  if (shared) {
    int err = 0;
    Elem* e = held_elem(sk, &slot, create, &err);
    if (!e) return nullptr;
    if (unsigned char* v = e->held.current()) return v;  // the fast path: no lock, no syscall
    if (!create) return nullptr;
    std::unique_ptr<unsigned char[]> zero;
    if (!init) {
      zero.reset(new (std::nothrow) unsigned char[value_size()]());
      if (!zero) return nullptr;
    }
    // Another process may have made it meanwhile: its value stays (EEXIST).
    domain::domain_storage_write(e->held, init ? init : zero.get(), BPF_NOEXIST);
    return e->held.current();
  }
  if (Elem* e = own_elem(sk, slot)) return e->value();
  if (!create) return nullptr;
  Elem* e = create_elem(sk, &slot, init);
  return e ? e->value() : nullptr;
}

int SkStorage::update_sys(const void* key, const void* value, uint64_t flags) noexcept {
  SocketRef sock;
  if (int r = sockfd_lookup(read_fd(key), &sock, false)) return r;
  return update(sock.get(), value, flags);
}

int SkStorage::lookup_sys(const void* key, void* value) noexcept {
  SocketRef sock;
  if (int r = sockfd_lookup(read_fd(key), &sock, false)) return r;
  return lookup(sock.get(), value);
}

int SkStorage::delete_sys(const void* key) noexcept {
  SocketRef sock;
  if (int r = sockfd_lookup(read_fd(key), &sock, false)) return r;
  return remove(sock.get());
}

int SkStorage::get_next_key_sys(const void*, void*) noexcept {
  return -ENOTSUPP_KERNEL;
}

void sk_storage_free(Socket* sk) noexcept {
  if (sk->sk_storage_elems.load(std::memory_order_acquire) == 0) return;
  Maps& m = live_maps();
  std::lock_guard g(m.lock);
  for (SkStorage* map : m.maps) map->erase(sk);
}

void sk_storage_clone(Socket* listener, Socket* child) noexcept {
  if (listener->sk_storage_elems.load(std::memory_order_acquire) == 0) return;
  Maps& m = live_maps();
  std::lock_guard g(m.lock);
  for (SkStorage* map : m.maps) {
    if (!(map->spec().flags & policy::BPF_F_CLONE)) continue;
    // Short of memory the child starts without this map's value (the kernel's
    // bpf_sk_storage_clone fails the clone: no connection at all).
    std::unique_ptr<unsigned char[]> value(new (std::nothrow) unsigned char[map->value_size()]);
    if (value && map->lookup(listener, value.get()) == 0)
      map->update(child, value.get(), BPF_NOEXIST);
  }
}

}  // namespace sockshim
