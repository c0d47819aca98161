#include "core/domain/shared_storage.h"

#include <algorithm>
#include <cstring>
#include <new>

#include <tuple>
#include "core/domain/arena_records.h"

namespace sockshim::domain {
namespace {

constexpr uint64_t kRootMagic = 0x544f4f5254534b53;    // "SKSTROOT"
constexpr uint64_t kSockMagic = 0x4b434f5354534b53;    // "SKSTSOCK"
constexpr uint64_t kHolderMagic = 0x444c4f4854534b53;  // "SKSTHOLD"
constexpr uint64_t kValueMagic = 0x4c41565354534b53;   // "SKSTVAL"

using ull = unsigned long long;

uint32_t sock_bucket(uint64_t cookie) noexcept {
  return static_cast<uint32_t>((cookie * 0x9e3779b97f4a7c15ULL) >> 54);  // 10 bits: 1024
}

StorageRoot* storage_root(Arena& a, bool create, int* err) noexcept {
  ArenaHeader* h = a.header();
  if (h->storage == 0) {
    if (!create) return nullptr;
    uint64_t off = a.alloc(sizeof(StorageRoot), err);
    if (!off) return nullptr;
    auto* r = a.at<StorageRoot>(off);
    r->magic = kRootMagic;
    h->storage = off;  // last: the root is whole once it is linked
    return r;
  }
  auto* r = arena_record<StorageRoot>(a, h->storage, kRootMagic, "sk_storage root");
  if (r && r->n_maps > kMaxStorageMaps) {
    a.corrupt("the sk_storage root says %u maps, more than %u", r->n_maps, kMaxStorageMaps);
    r = nullptr;
  }
  if (!r) *err = -EUCLEAN;
  return r;
}

bool desc_ok(Arena& a, const StorageDesc& d, uint32_t i) noexcept {
  if (memchr(d.name, '\0', sizeof d.name) && d.value_size > 0 && d.value_size <= kMaxStorageValue)
    return true;
  a.corrupt("sk_storage map descriptor %u is overwritten (its name or value size)", i);
  return false;
}

// The descriptor index of def, created if asked; -errno when none.
int find_map(Arena& a, StorageRoot* r, const StorageDef& def, bool create) noexcept {
  for (uint32_t i = 0; i < r->n_maps; ++i) {
    StorageDesc& d = r->map[i];
    if (!desc_ok(a, d, i)) return -EUCLEAN;
    if (d.value_size == def.value_size && d.flags == def.flags && def.name.size() < sizeof d.name &&
        strncmp(d.name, def.name.data(), def.name.size()) == 0 && d.name[def.name.size()] == '\0')
      return static_cast<int>(i);
  }
  if (!create) return -ENOENT;
  if (def.name.size() >= kMaxMapName || def.value_size == 0 || def.value_size > kMaxStorageValue)
    return -EINVAL;
  if (r->n_maps == kMaxStorageMaps) return -ENOSPC;
  StorageDesc& d = r->map[r->n_maps];
  memset(&d, 0, sizeof d);
  memcpy(d.name, def.name.data(), def.name.size());
  d.value_size = def.value_size;
  d.flags = def.flags;
  r->n_maps += 1;  // last: a descriptor counted is whole
  return static_cast<int>(r->n_maps - 1);
}

StorageSock* find_sock(Arena& a, StorageRoot* r, uint64_t cookie, uint64_t** link,
                       int* err) noexcept {
  ChainSteps steps(a);
  for (uint64_t* l = &r->socks[sock_bucket(cookie)]; *l;) {
    StorageSock* s = steps.next(a, "sk_storage socket")
                         ? arena_record<StorageSock>(a, *l, kSockMagic, "sk_storage socket record")
                         : nullptr;
    if (!s) {
      *err = -EUCLEAN;
      return nullptr;
    }
    if (s->cookie == cookie) {
      if (link) *link = l;
      return s;
    }
    l = &s->next;
  }
  return nullptr;
}

// The value record at off, with its data block checked against its map.
ValueRec* value_rec(Arena& a, StorageRoot* r, uint64_t off) noexcept {
  auto* v = arena_record<ValueRec>(a, off, kValueMagic, "sk_storage value record");
  if (!v) return nullptr;
  uint64_t st = v->state.load(std::memory_order_relaxed);
  if (v->map >= r->n_maps || v->value_size != r->map[v->map].value_size ||
      a.payload_size(v->data) < 2ull * v->value_size ||
      (st != 0 && (st & ~1ull) != kValuePresent)) {
    a.corrupt("the sk_storage value at offset %llu is overwritten (its map, size, slots or state)",
              static_cast<ull>(off));
    return nullptr;
  }
  return v;
}

// Unlinks the socket at *link, then frees its blocks.
int drop_sock(Arena& a, StorageRoot* r, StorageSock* s, uint64_t* link) noexcept {
  uint64_t self = *link;
  *link = s->next;  // from here on no process finds it
  ChainSteps steps(a);
  for (uint64_t off = s->values; off;) {
    ValueRec* v = steps.next(a, "sk_storage value") ? value_rec(a, r, off) : nullptr;
    if (!v) return -EUCLEAN;
    uint64_t next = v->next;
    if (int rc = a.free(v->data)) return rc;
    if (int rc = a.free(off)) return rc;
    off = next;
  }
  for (uint64_t off = s->holders; off;) {
    auto* h = steps.next(a, "sk_storage holder")
                  ? arena_record<StorageHolder>(a, off, kHolderMagic, "sk_storage holder record")
                  : nullptr;
    if (!h) return -EUCLEAN;
    uint64_t next = h->next;
    if (int rc = a.free(off)) return rc;
    off = next;
  }
  return a.free(self);
}

// Removes the holder records of s that match(holder); drops s when none is left.
template <typename Match>
int drop_holders(Arena& a, StorageRoot* r, StorageSock* s, uint64_t* link, Match&& match) noexcept {
  ChainSteps steps(a);
  for (uint64_t* l = &s->holders; *l;) {
    auto* h = steps.next(a, "sk_storage holder")
                  ? arena_record<StorageHolder>(a, *l, kHolderMagic, "sk_storage holder record")
                  : nullptr;
    if (!h) return -EUCLEAN;
    if (!match(*h)) {
      l = &h->next;
      continue;
    }
    uint64_t off = *l;
    *l = h->next;
    if (int rc = a.free(off)) return rc;
  }
  return s->holders ? 0 : drop_sock(a, r, s, link);
}

// Calls f(sock, link, bucket) for every socket record; f may drop the one it
// is given.
template <typename F>
int each_sock(Arena& a, StorageRoot* r, F&& f) noexcept {
  ChainSteps steps(a);
  for (uint32_t b = 0; b < kSockBuckets; ++b) {
    for (uint64_t* l = &r->socks[b]; *l;) {
      StorageSock* s =
          steps.next(a, "sk_storage socket")
              ? arena_record<StorageSock>(a, *l, kSockMagic, "sk_storage socket record")
              : nullptr;
      if (!s) return -EUCLEAN;
      uint64_t self = *l;
      if (int rc = f(s, l, b)) return rc;
      if (*l == self) l = &s->next;  // else dropped: *l is already the next
    }
  }
  return 0;
}

int add_holder(Arena& a, StorageSock* s, pid_t pid, uint64_t start_time) noexcept {
  int err = 0;
  uint64_t off = a.alloc(sizeof(StorageHolder), &err);
  if (!off) return err;
  auto* h = a.at<StorageHolder>(off);
  h->magic = kHolderMagic;
  h->pid = pid;
  h->start_time = start_time;
  h->next = s->holders;
  s->holders = off;
  return 0;
}

void bump(Arena& a) noexcept {
  a.header()->generation.fetch_add(1, std::memory_order_release);
}

}  // namespace

int storage_hold(Arena& a, const StorageDef& def, uint64_t cookie, const Holder& holder,
                 bool create, ValueRef* out) noexcept {
  int err = 0;
  StorageRoot* r = storage_root(a, create, &err);
  if (!r) return err ? err : -ENOENT;
  int mi = find_map(a, r, def, create);
  if (mi < 0) return mi;
  uint64_t* link = nullptr;
  StorageSock* s = find_sock(a, r, cookie, &link, &err);
  if (err) return err;
  ValueRec* v = nullptr;
  ChainSteps steps(a);
  for (uint64_t off = s ? s->values : 0; off && !v;) {
    ValueRec* x = steps.next(a, "sk_storage value") ? value_rec(a, r, off) : nullptr;
    if (!x) return -EUCLEAN;
    if (x->map == static_cast<uint32_t>(mi)) v = x;
    off = x->next;
  }
  if (!v && !create) return -ENOENT;
  if (!s) {
    uint64_t off = a.alloc(sizeof(StorageSock), &err);
    if (!off) return err;
    s = a.at<StorageSock>(off);
    s->magic = kSockMagic;
    s->cookie = cookie;
    if (int rc = add_holder(a, s, holder.pid, holder.start_time)) {
      a.free(off);
      return rc;
    }
    uint64_t& bucket = r->socks[sock_bucket(cookie)];
    s->next = bucket;
    bucket = off;  // linked whole, with its first holder
  } else {
    bool held = false;
    for (uint64_t off = s->holders; off && !held;) {
      auto* h = steps.next(a, "sk_storage holder")
                    ? arena_record<StorageHolder>(a, off, kHolderMagic, "sk_storage holder record")
                    : nullptr;
      if (!h) return -EUCLEAN;
      held = h->pid == holder.pid && h->start_time == holder.start_time;
      off = h->next;
    }
    if (!held)
      if (int rc = add_holder(a, s, holder.pid, holder.start_time)) return rc;
  }
  if (!v) {
    uint64_t data = a.alloc(2ull * def.value_size, &err);
    if (!data) return err;
    uint64_t off = a.alloc(sizeof(ValueRec), &err);
    if (!off) {
      a.free(data);
      return err;
    }
    v = a.at<ValueRec>(off);
    v->magic = kValueMagic;
    v->map = static_cast<uint32_t>(mi);
    v->value_size = def.value_size;
    v->state.store(0, std::memory_order_relaxed);
    v->data = data;
    v->next = s->values;
    s->values = off;  // linked whole, absent until written
  }
  out->rec = v;
  out->data = a.at<unsigned char>(v->data, 2ull * v->value_size);
  bump(a);
  return 0;
}

int storage_write(ValueRef v, const void* value, uint64_t flags) noexcept {
  uint64_t st = v.rec->state.load(std::memory_order_relaxed);
  bool present = st & kValuePresent;
  if (flags == 1 /* BPF_NOEXIST */ && present) return -EEXIST;
  if (flags == 2 /* BPF_EXIST */ && !present) return -ENOENT;
  uint64_t slot = present ? (st & 1) ^ 1 : 0;
  memcpy(v.data + slot * v.rec->value_size, value, v.rec->value_size);
  v.rec->state.store(kValuePresent | slot, std::memory_order_release);  // the commit
  return 0;
}

int storage_delete(ValueRef v) noexcept {
  if (!(v.rec->state.load(std::memory_order_relaxed) & kValuePresent)) return -ENOENT;
  v.rec->state.store(0, std::memory_order_release);
  return 0;
}

int storage_holder_drop(Arena& a, uint64_t cookie, pid_t pid, uint64_t start_time) noexcept {
  int err = 0;
  StorageRoot* r = storage_root(a, false, &err);
  if (!r) return err;
  uint64_t* link = nullptr;
  StorageSock* s = find_sock(a, r, cookie, &link, &err);
  if (!s) return err;
  int rc = drop_holders(a, r, s, link, [&](const StorageHolder& h) {
    return h.pid == pid && h.start_time == start_time;
  });
  bump(a);
  return rc;
}

int storage_holders_drop_dead(Arena& a, const Holder* dead, size_t n) noexcept {
  int err = 0;
  StorageRoot* r = storage_root(a, false, &err);
  if (!r || n == 0) return err;
  int rc = each_sock(a, r, [&](StorageSock* s, uint64_t* link, uint32_t) {
    return drop_holders(a, r, s, link, [&](const StorageHolder& h) {
      for (size_t i = 0; i < n; ++i)
        if (h.pid == dead[i].pid && h.start_time == dead[i].start_time) return true;
      return false;
    });
  });
  bump(a);
  return rc;
}

int storage_holders_inherit(Arena& a, const Holder& parent, const Holder& child) noexcept {
  int err = 0;
  StorageRoot* r = storage_root(a, false, &err);
  if (!r) return err;
  return each_sock(a, r, [&](StorageSock* s, uint64_t*, uint32_t) {
    ChainSteps steps(a);
    for (uint64_t off = s->holders; off;) {
      auto* h = steps.next(a, "sk_storage holder")
                    ? arena_record<StorageHolder>(a, off, kHolderMagic, "sk_storage holder record")
                    : nullptr;
      if (!h) return -EUCLEAN;
      if (h->pid == parent.pid && h->start_time == parent.start_time)
        return add_holder(a, s, child.pid, child.start_time);  // ahead of the walk
      off = h->next;
    }
    return 0;
  });
}

int shared_storage_read(Arena& a, std::vector<SharedValue>* out) noexcept {
  int err = 0;
  out->clear();
  StorageRoot* r = storage_root(a, false, &err);
  if (!r) return err;
  try {
    int rc = each_sock(a, r, [&](StorageSock* s, uint64_t*, uint32_t) {
      std::vector<pid_t> holders;
      ChainSteps steps(a);
      for (uint64_t off = s->holders; off;) {
        auto* h =
            steps.next(a, "sk_storage holder")
                ? arena_record<StorageHolder>(a, off, kHolderMagic, "sk_storage holder record")
                : nullptr;
        if (!h) return -EUCLEAN;
        holders.push_back(h->pid);
        off = h->next;
      }
      std::sort(holders.begin(), holders.end());
      for (uint64_t off = s->values; off;) {
        ValueRec* v = steps.next(a, "sk_storage value") ? value_rec(a, r, off) : nullptr;
        if (!v) return -EUCLEAN;
        ValueRef ref{v, a.at<unsigned char>(v->data, 2ull * v->value_size)};
        if (const unsigned char* cur = ref.current())
          out->push_back({r->map[v->map].name, s->cookie, {cur, cur + v->value_size}, holders});
        off = v->next;
      }
      return 0;
    });
    if (rc < 0) return rc;
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  std::sort(out->begin(), out->end(), [](const SharedValue& x, const SharedValue& y) {
    return std::tie(x.map, x.cookie) < std::tie(y.map, y.cookie);
  });
  return 0;
}

bool shared_storage_check(Arena& a, bool fix, std::vector<uint64_t>* keep) noexcept {
  int err = 0;
  StorageRoot* r = storage_root(a, false, &err);
  if (!r) return err == 0;
  for (uint32_t i = 0; i < r->n_maps; ++i)
    if (!desc_ok(a, r->map[i], i)) return false;
  try {
    keep->push_back(a.header()->storage);
    int rc = each_sock(a, r, [&](StorageSock* s, uint64_t* l, uint32_t b) {
      if (sock_bucket(s->cookie) != b)
        return a.corrupt("the sk_storage socket record of cookie %llu is in the wrong bucket",
                         static_cast<ull>(s->cookie));
      if (!s->holders) {
        if (fix) return drop_sock(a, r, s, l);  // a holder died making it
        return a.corrupt("the sk_storage socket record of cookie %llu has no holder",
                         static_cast<ull>(s->cookie));
      }
      keep->push_back(*l);
      ChainSteps steps(a);
      for (uint64_t off = s->holders; off;) {
        auto* h =
            steps.next(a, "sk_storage holder")
                ? arena_record<StorageHolder>(a, off, kHolderMagic, "sk_storage holder record")
                : nullptr;
        if (!h) return -EUCLEAN;
        keep->push_back(off);
        off = h->next;
      }
      for (uint64_t off = s->values; off;) {
        ValueRec* v = steps.next(a, "sk_storage value") ? value_rec(a, r, off) : nullptr;
        if (!v) return -EUCLEAN;
        keep->push_back(off);
        keep->push_back(v->data);
        off = v->next;
      }
      return 0;
    });
    return rc == 0;
  } catch (const std::bad_alloc&) {
    a.corrupt("out of memory while checking the sk_storage values");
    return false;
  }
}

}  // namespace sockshim::domain
