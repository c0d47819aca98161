#include "core/domain/shared_maps.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <new>

#include "core/domain/arena_records.h"

namespace sockshim::domain {
namespace {

constexpr uint64_t kRootMagic = 0x5350414d48534444;    // "DDSHMAPS"
constexpr uint64_t kSockMagic = 0x4345524b434f5344;    // "DSOCKREC"
constexpr uint64_t kHolderMagic = 0x5245444c4f484444;  // "DDHOLDER"
constexpr uint64_t kEntryMagic = 0x5952544e45504d44;   // "DMPENTRY"

using ull = unsigned long long;

uint32_t sock_bucket(uint64_t cookie) noexcept {
  return static_cast<uint32_t>((cookie * 0x9e3779b97f4a7c15ULL) >> 54);  // 10 bits: 1024
}

uint32_t key_hash(const void* key, uint32_t n) noexcept {
  uint32_t h = 2166136261u;
  for (uint32_t i = 0; i < n; ++i) h = (h ^ static_cast<const unsigned char*>(key)[i]) * 16777619u;
  return h;
}

SharedMapsRoot* maps_root(Arena& a, bool create, int* err) noexcept {
  ArenaHeader* h = a.header();
  if (h->maps_root == 0) {
    if (!create) return nullptr;
    uint64_t off = a.alloc(sizeof(SharedMapsRoot), err);
    if (!off) return nullptr;
    auto* r = a.at<SharedMapsRoot>(off);
    r->magic = kRootMagic;
    h->maps_root = off;  // last: the root is whole once it is linked
    return r;
  }
  auto* r = arena_record<SharedMapsRoot>(a, h->maps_root, kRootMagic, "shared maps root");
  if (r && r->n_maps > kMaxSharedMaps) {
    a.corrupt("the shared maps root says %u maps, more than %u", r->n_maps, kMaxSharedMaps);
    r = nullptr;
  }
  if (!r) *err = -EUCLEAN;
  return r;
}

// The bucket array of descriptor i, checked, or nullptr.
uint64_t* map_buckets(Arena& a, SharedMapsRoot* r, uint32_t i) noexcept {
  MapDesc& d = r->map[i];
  if (!memchr(d.name, '\0', sizeof d.name) || d.key_size == 0 || d.key_size > kMaxSharedKey ||
      !std::has_single_bit(d.n_buckets) || d.n_buckets > kMaxMapBuckets ||
      a.payload_size(d.buckets) < uint64_t{d.n_buckets} * 8) {
    a.corrupt("shared map descriptor %u is overwritten (its name, key size or buckets)", i);
    return nullptr;
  }
  return a.at<uint64_t>(d.buckets, uint64_t{d.n_buckets} * 8);
}

// The descriptor index of def, created if asked; -errno when none.
int find_map(Arena& a, SharedMapsRoot* r, const MapDef& def, bool create) noexcept {
  for (uint32_t i = 0; i < r->n_maps; ++i) {
    MapDesc& d = r->map[i];
    if (d.type == def.type && d.key_size == def.key_size && d.max_entries == def.max_entries &&
        strncmp(d.name, def.name.data(), sizeof d.name) == 0 && def.name.size() < sizeof d.name &&
        d.name[def.name.size()] == '\0')
      return map_buckets(a, r, i) ? static_cast<int>(i) : -EUCLEAN;
  }
  if (!create) return -ENOENT;
  if (def.name.size() >= kMaxMapName || def.key_size == 0 || def.key_size > kMaxSharedKey)
    return -EINVAL;
  if (r->n_maps == kMaxSharedMaps) return -ENOSPC;
  uint32_t n = std::min(std::bit_ceil(std::max(def.max_entries, 1u)), kMaxMapBuckets);
  int err = 0;
  uint64_t off = a.alloc(uint64_t{n} * 8, &err);
  if (!off) return err;
  MapDesc& d = r->map[r->n_maps];
  memset(&d, 0, sizeof d);
  memcpy(d.name, def.name.data(), def.name.size());
  d.type = def.type;
  d.key_size = def.key_size;
  d.max_entries = def.max_entries;
  d.n_buckets = n;
  d.buckets = off;
  r->n_maps += 1;  // last: a descriptor counted is whole
  return static_cast<int>(r->n_maps - 1);
}

// The socket record of cookie (nullptr: none, or corrupt with *err set) and
// the link that points at it.
SockRec* find_sock(Arena& a, SharedMapsRoot* r, uint64_t cookie, uint64_t** link,
                   int* err) noexcept {
  ChainSteps steps(a);
  for (uint64_t* l = &r->socks[sock_bucket(cookie)]; *l;) {
    SockRec* s = steps.next(a, "socket") ? arena_record<SockRec>(a, *l, kSockMagic, "socket record")
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

// The entry at key in map i and the link that points at it.
EntryRec* find_entry(Arena& a, SharedMapsRoot* r, uint32_t i, const void* key, uint64_t** link,
                     int* err) noexcept {
  uint64_t* buckets = map_buckets(a, r, i);
  if (!buckets) {
    *err = -EUCLEAN;
    return nullptr;
  }
  const MapDesc& d = r->map[i];
  ChainSteps steps(a);
  for (uint64_t* l = &buckets[key_hash(key, d.key_size) & (d.n_buckets - 1)]; *l;) {
    EntryRec* e = steps.next(a, "map entry")
                      ? arena_record<EntryRec>(a, *l, kEntryMagic, "map entry")
                      : nullptr;
    if (!e) {
      *err = -EUCLEAN;
      return nullptr;
    }
    if (memcmp(e->key, key, d.key_size) == 0) {
      *link = l;
      return e;
    }
    l = &e->next;
  }
  return nullptr;
}

// Unlinks the entry at off from the chain starting at *l (through next, or
// sock_next). -EUCLEAN when it is not there.
int unlink_entry(Arena& a, uint64_t* l, uint64_t off, bool sock_chain) noexcept {
  ChainSteps steps(a);
  while (*l && *l != off) {
    EntryRec* e = steps.next(a, "map entry")
                      ? arena_record<EntryRec>(a, *l, kEntryMagic, "map entry")
                      : nullptr;
    if (!e) return -EUCLEAN;
    l = sock_chain ? &e->sock_next : &e->next;
  }
  if (*l != off)
    return a.corrupt("the map entry at offset %llu is missing from its %s chain",
                     static_cast<ull>(off), sock_chain ? "socket's" : "bucket's");
  EntryRec* e = a.at<EntryRec>(off);
  *l = sock_chain ? e->sock_next : e->next;
  return 0;
}

// An entry entered or left map d: lock-free readers of its generation see it.
void map_changed(MapDesc& d) noexcept {
  __atomic_store_n(&d.gen, d.gen + 1, __ATOMIC_RELEASE);
}

// Takes the entry at off out of its map bucket (the truth), counted.
int unlink_from_map(Arena& a, SharedMapsRoot* r, EntryRec* e, uint64_t off) noexcept {
  if (e->map >= r->n_maps)
    return a.corrupt("the map entry at offset %llu names map %u of %u", static_cast<ull>(off),
                     e->map, r->n_maps);
  uint64_t* buckets = map_buckets(a, r, e->map);
  if (!buckets) return -EUCLEAN;
  MapDesc& d = r->map[e->map];
  if (int rc =
          unlink_entry(a, &buckets[key_hash(e->key, d.key_size) & (d.n_buckets - 1)], off, false))
    return rc;
  d.count -= d.count ? 1 : 0;
  map_changed(d);
  return 0;
}

// Forgets the socket at *link: its entries leave their maps first (so that a
// holder killed half-way leaves no entry without its socket record), then
// the record goes, then its blocks.
int drop_sock(Arena& a, SharedMapsRoot* r, SockRec* s, uint64_t* link) noexcept {
  ChainSteps steps(a);
  while (s->entries) {
    uint64_t off = s->entries;
    EntryRec* e = steps.next(a, "socket's entry")
                      ? arena_record<EntryRec>(a, off, kEntryMagic, "map entry")
                      : nullptr;
    if (!e) return -EUCLEAN;
    if (int rc = unlink_from_map(a, r, e, off)) return rc;
    s->entries = e->sock_next;
    if (int rc = a.free(off)) return rc;
  }
  uint64_t self = *link;
  *link = s->next;
  for (uint64_t h = s->holders; h;) {
    auto* hr = steps.next(a, "holder")
                   ? arena_record<HolderRec>(a, h, kHolderMagic, "holder record")
                   : nullptr;
    if (!hr) return -EUCLEAN;
    uint64_t next = hr->next;
    if (int rc = a.free(h)) return rc;
    h = next;
  }
  return a.free(self);
}

// Drops the socket record of cookie if it has no holder or no entry left.
int drop_if_unused(Arena& a, SharedMapsRoot* r, uint64_t cookie) noexcept {
  int err = 0;
  uint64_t* link = nullptr;
  SockRec* s = find_sock(a, r, cookie, &link, &err);
  if (!s) return err;
  return s->holders && s->entries ? 0 : drop_sock(a, r, s, link);
}

// Removes the entry e at off from its map and its socket.
int remove_entry(Arena& a, SharedMapsRoot* r, EntryRec* e, uint64_t off) noexcept {
  uint64_t cookie = e->cookie;
  if (int rc = unlink_from_map(a, r, e, off)) return rc;
  int err = 0;
  uint64_t* slink = nullptr;
  if (SockRec* s = find_sock(a, r, cookie, &slink, &err)) {
    if (int rc = unlink_entry(a, &s->entries, off, true)) return rc;
  } else if (err) {
    return err;
  }
  if (int rc = a.free(off)) return rc;
  return drop_if_unused(a, r, cookie);
}

// Calls f(sock, link, bucket) for every socket record; f may drop the one it
// is given.
template <typename F>
int each_sock(Arena& a, SharedMapsRoot* r, F&& f) noexcept {
  ChainSteps steps(a);
  for (uint32_t b = 0; b < kSockBuckets; ++b) {
    for (uint64_t* l = &r->socks[b]; *l;) {
      SockRec* s = steps.next(a, "socket")
                       ? arena_record<SockRec>(a, *l, kSockMagic, "socket record")
                       : nullptr;
      if (!s) return -EUCLEAN;
      uint64_t self = *l;
      if (int rc = f(s, l, b)) return rc;
      if (*l == self) l = &s->next;  // else dropped: *l is already the next
    }
  }
  return 0;
}

// Removes the holder records of s that match(holder); drops s when none is
// left.
template <typename Match>
int drop_holders(Arena& a, SharedMapsRoot* r, SockRec* s, uint64_t* link, Match&& match) noexcept {
  ChainSteps steps(a);
  for (uint64_t* l = &s->holders; *l;) {
    auto* h = steps.next(a, "holder")
                  ? arena_record<HolderRec>(a, *l, kHolderMagic, "holder record")
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

void bump(Arena& a) noexcept {
  a.header()->generation.fetch_add(1, std::memory_order_release);
}

}  // namespace

int shared_map_update(Arena& a, const MapDef& def, const void* key, uint64_t cookie,
                      const Holder& holder) noexcept {
  int err = 0;
  SharedMapsRoot* r = maps_root(a, true, &err);
  if (!r) return err;
  int mi = find_map(a, r, def, true);
  if (mi < 0) return mi;
  uint64_t* slink = nullptr;
  SockRec* s = find_sock(a, r, cookie, &slink, &err);
  if (err) return err;
  if (!s) {
    uint64_t off = a.alloc(sizeof(SockRec), &err);
    if (!off) return err;
    s = a.at<SockRec>(off);
    s->magic = kSockMagic;
    s->cookie = cookie;
    uint64_t& bucket = r->socks[sock_bucket(cookie)];
    s->next = bucket;
    bucket = off;  // linked whole; without holder or entry until both are made
  }
  ChainSteps steps(a);
  bool held = false;
  for (uint64_t h = s->holders; h && !held;) {
    auto* hr = steps.next(a, "holder")
                   ? arena_record<HolderRec>(a, h, kHolderMagic, "holder record")
                   : nullptr;
    if (!hr) return -EUCLEAN;
    held = hr->pid == holder.pid && hr->start_time == holder.start_time;
    h = hr->next;
  }
  uint64_t* elink = nullptr;
  EntryRec* old = find_entry(a, r, static_cast<uint32_t>(mi), key, &elink, &err);
  if (err) return err;
  uint64_t old_off = old ? *elink : 0;
  if (!held) {
    uint64_t off = a.alloc(sizeof(HolderRec), &err);
    if (!off) {
      drop_if_unused(a, r, cookie);
      return err;
    }
    auto* hr = a.at<HolderRec>(off);
    hr->magic = kHolderMagic;
    hr->pid = holder.pid;
    hr->fd = holder.fd;
    hr->start_time = holder.start_time;
    hr->next = s->holders;
    s->holders = off;
  }
  if (old && old->cookie == cookie) {
    bump(a);
    return 0;
  }
  uint64_t off = a.alloc(sizeof(EntryRec), &err);
  if (!off) {
    drop_if_unused(a, r, cookie);
    return err;
  }
  auto* e = a.at<EntryRec>(off);
  e->magic = kEntryMagic;
  e->cookie = cookie;
  e->map = static_cast<uint32_t>(mi);
  e->key_size = def.key_size;
  memcpy(e->key, key, def.key_size);
  e->sock_next = s->entries;
  s->entries = off;
  MapDesc& d = r->map[mi];
  uint64_t& bucket = a.at<uint64_t>(
      d.buckets, uint64_t{d.n_buckets} * 8)[key_hash(key, d.key_size) & (d.n_buckets - 1)];
  e->next = bucket;
  bucket = off;  // the entry is in the map from here on
  d.count += 1;
  map_changed(d);
  if (old) {  // after the new one is in: a reader never finds the key empty
    if (int rc = remove_entry(a, r, old, old_off)) return rc;
  }
  bump(a);
  return 0;
}

int shared_map_delete(Arena& a, const MapDef& def, const void* key, uint64_t cookie) noexcept {
  int err = 0;
  SharedMapsRoot* r = maps_root(a, false, &err);
  if (!r) return err ? err : -ENOENT;
  int mi = find_map(a, r, def, false);
  if (mi < 0) return mi;
  uint64_t* link = nullptr;
  EntryRec* e = find_entry(a, r, static_cast<uint32_t>(mi), key, &link, &err);
  if (!e) return err ? err : -ENOENT;
  if (cookie && e->cookie != cookie) return -ENOENT;  // replaced by another process since
  if (int rc = remove_entry(a, r, e, *link)) return rc;
  bump(a);
  return 0;
}

uint64_t shared_map_lookup(Arena& a, const MapDef& def, const void* key, int* err) noexcept {
  *err = 0;
  SharedMapsRoot* r = maps_root(a, false, err);
  if (!r) return 0;
  int mi = find_map(a, r, def, false);
  if (mi < 0) {
    *err = mi == -ENOENT ? 0 : mi;
    return 0;
  }
  uint64_t* link = nullptr;
  EntryRec* e = find_entry(a, r, static_cast<uint32_t>(mi), key, &link, err);
  return e ? e->cookie : 0;
}

int sock_holder_drop(Arena& a, uint64_t cookie, pid_t pid, uint64_t start_time) noexcept {
  int err = 0;
  SharedMapsRoot* r = maps_root(a, false, &err);
  if (!r) return err;
  uint64_t* link = nullptr;
  SockRec* s = find_sock(a, r, cookie, &link, &err);
  if (!s) return err;
  int rc = drop_holders(a, r, s, link, [&](const HolderRec& h) {
    return h.pid == pid && h.start_time == start_time;
  });
  bump(a);
  return rc;
}

int sock_holders_drop_dead(Arena& a, const Holder* dead, size_t n) noexcept {
  int err = 0;
  SharedMapsRoot* r = maps_root(a, false, &err);
  if (!r || n == 0) return err;
  int rc = each_sock(a, r, [&](SockRec* s, uint64_t* link, uint32_t) {
    return drop_holders(a, r, s, link, [&](const HolderRec& h) {
      for (size_t i = 0; i < n; ++i)
        if (h.pid == dead[i].pid && h.start_time == dead[i].start_time) return true;
      return false;
    });
  });
  bump(a);
  return rc;
}

int sock_holders_inherit(Arena& a, const Holder& parent, const Holder& child) noexcept {
  int err = 0;
  SharedMapsRoot* r = maps_root(a, false, &err);
  if (!r) return err;
  return each_sock(a, r, [&](SockRec* s, uint64_t*, uint32_t) {
    ChainSteps steps(a);
    for (uint64_t h = s->holders; h;) {
      auto* hr = steps.next(a, "holder")
                     ? arena_record<HolderRec>(a, h, kHolderMagic, "holder record")
                     : nullptr;
      if (!hr) return -EUCLEAN;
      if (hr->pid == parent.pid && hr->start_time == parent.start_time) {
        int e = 0;
        uint64_t off = a.alloc(sizeof(HolderRec), &e);
        if (!off) return e;
        auto* mine = a.at<HolderRec>(off);
        mine->magic = kHolderMagic;
        mine->pid = child.pid;
        mine->fd = hr->fd;
        mine->start_time = child.start_time;
        mine->next = s->holders;
        s->holders = off;  // ahead of the walk: not seen again
        break;
      }
      h = hr->next;
    }
    return 0;
  });
}

int sock_holders_after_exec(Arena& a, pid_t pid, uint64_t start_time,
                            int (*fd_of)(int fd, uint64_t cookie, void* ctx), void* ctx) noexcept {
  int err = 0;
  SharedMapsRoot* r = maps_root(a, false, &err);
  if (!r) return err;
  int rc = each_sock(a, r, [&](SockRec* s, uint64_t* link, uint32_t) {
    uint64_t cookie = s->cookie;
    return drop_holders(a, r, s, link, [&](HolderRec& h) {
      if (h.pid != pid || h.start_time != start_time) return false;
      int fd = fd_of(h.fd, cookie, ctx);
      if (fd >= 0) h.fd = fd;
      return fd < 0;
    });
  });
  bump(a);
  return rc;
}

int shared_entries_held(Arena& a, pid_t pid, uint64_t start_time,
                        std::vector<HeldEntry>* out) noexcept {
  int err = 0;
  out->clear();
  SharedMapsRoot* r = maps_root(a, false, &err);
  if (!r) return err;
  try {
    return each_sock(a, r, [&](SockRec* s, uint64_t*, uint32_t) {
      ChainSteps steps(a);
      int fd = -1;
      for (uint64_t h = s->holders; h && fd < 0;) {
        auto* hr = steps.next(a, "holder")
                       ? arena_record<HolderRec>(a, h, kHolderMagic, "holder record")
                       : nullptr;
        if (!hr) return -EUCLEAN;
        if (hr->pid == pid && hr->start_time == start_time) fd = hr->fd;
        h = hr->next;
      }
      if (fd < 0) return 0;
      for (uint64_t off = s->entries; off;) {
        auto* e = steps.next(a, "socket's entry")
                      ? arena_record<EntryRec>(a, off, kEntryMagic, "map entry")
                      : nullptr;
        if (!e) return -EUCLEAN;
        if (e->map >= r->n_maps || !map_buckets(a, r, e->map))
          return a.corrupt("the map entry at offset %llu names map %u of %u", static_cast<ull>(off),
                           e->map, r->n_maps);
        const MapDesc& d = r->map[e->map];
        out->push_back({d.name,
                        d.type,
                        d.key_size,
                        d.max_entries,
                        {e->key, e->key + d.key_size},
                        s->cookie,
                        fd});
        off = e->sock_next;
      }
      return 0;
    });
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
}

const uint32_t* shared_map_gen_word(Arena& a, const MapDef& def, int* err) noexcept {
  *err = 0;
  SharedMapsRoot* r = maps_root(a, false, err);
  if (!r) return nullptr;
  int mi = find_map(a, r, def, false);
  if (mi < 0) {
    *err = mi == -ENOENT ? 0 : mi;
    return nullptr;
  }
  return &r->map[mi].gen;
}

int shared_maps_read(Arena& a, std::vector<SharedMap>* out) noexcept {
  int err = 0;
  out->clear();
  SharedMapsRoot* r = maps_root(a, false, &err);
  if (!r) return err;
  try {
    for (uint32_t i = 0; i < r->n_maps; ++i) {
      uint64_t* buckets = map_buckets(a, r, i);
      if (!buckets) return -EUCLEAN;
      const MapDesc& d = r->map[i];
      SharedMap m{d.name, d.type, d.key_size, d.max_entries, {}};
      ChainSteps steps(a);
      for (uint32_t b = 0; b < d.n_buckets; ++b) {
        for (uint64_t off = buckets[b]; off;) {
          auto* e = steps.next(a, "map entry")
                        ? arena_record<EntryRec>(a, off, kEntryMagic, "map entry")
                        : nullptr;
          if (!e) return -EUCLEAN;
          SharedEntry se{{e->key, e->key + d.key_size}, e->cookie, {}};
          SockRec* s = find_sock(a, r, e->cookie, nullptr, &err);
          if (err) return err;
          ChainSteps holder_steps(a);
          for (uint64_t h = s ? s->holders : 0; h;) {
            auto* hr = holder_steps.next(a, "holder")
                           ? arena_record<HolderRec>(a, h, kHolderMagic, "holder record")
                           : nullptr;
            if (!hr) return -EUCLEAN;
            se.holders.push_back({hr->pid, hr->start_time, hr->fd});
            h = hr->next;
          }
          std::sort(se.holders.begin(), se.holders.end(),
                    [](const Holder& x, const Holder& y) { return x.pid < y.pid; });
          m.entries.push_back(std::move(se));
          off = e->next;
        }
      }
      std::sort(m.entries.begin(), m.entries.end(),
                [](const SharedEntry& x, const SharedEntry& y) { return x.key < y.key; });
      out->push_back(std::move(m));
    }
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  return 0;
}

namespace {

// The repair: every socket's entry chain rebuilt from the map buckets (an
// entry whose socket has no record leaves its map), counts recounted, and
// sockets without a holder or an entry dropped.
bool repair(Arena& a, SharedMapsRoot* r) noexcept {
  if (each_sock(a, r, [](SockRec* s, uint64_t*, uint32_t) {
        s->entries = 0;
        return 0;
      }) < 0)
    return false;
  for (uint32_t i = 0; i < r->n_maps; ++i) {
    uint64_t* buckets = map_buckets(a, r, i);
    if (!buckets) return false;
    MapDesc& d = r->map[i];
    d.count = 0;
    ChainSteps steps(a);
    for (uint32_t b = 0; b < d.n_buckets; ++b) {
      for (uint64_t* l = &buckets[b]; *l;) {
        auto* e = steps.next(a, "map entry")
                      ? arena_record<EntryRec>(a, *l, kEntryMagic, "map entry")
                      : nullptr;
        if (!e) return false;
        int err = 0;
        SockRec* s = find_sock(a, r, e->cookie, nullptr, &err);
        if (err) return false;
        if (!s) {  // its socket was being dropped
          *l = e->next;
          map_changed(d);
          continue;
        }
        e->sock_next = s->entries;
        s->entries = *l;
        d.count += 1;
        l = &e->next;
      }
    }
  }
  return each_sock(a, r, [&](SockRec* s, uint64_t* link, uint32_t) {
           return s->holders && s->entries ? 0 : drop_sock(a, r, s, link);
         }) == 0;
}

}  // namespace

bool shared_maps_check(Arena& a, bool fix, std::vector<uint64_t>* keep) noexcept {
  int err = 0;
  SharedMapsRoot* r = maps_root(a, false, &err);
  if (!r) return err == 0;
  if (fix && !repair(a, r)) return false;
  try {
    keep->push_back(a.header()->maps_root);
    uint64_t entries = 0, counted = 0;
    for (uint32_t i = 0; i < r->n_maps; ++i) {
      uint64_t* buckets = map_buckets(a, r, i);
      if (!buckets) return false;
      keep->push_back(r->map[i].buckets);
      const MapDesc& d = r->map[i];
      ChainSteps steps(a);
      uint32_t n = 0;
      for (uint32_t b = 0; b < d.n_buckets; ++b) {
        for (uint64_t off = buckets[b]; off;) {
          auto* e = steps.next(a, "map entry")
                        ? arena_record<EntryRec>(a, off, kEntryMagic, "map entry")
                        : nullptr;
          if (!e) return false;
          if (e->map != i || e->key_size != d.key_size ||
              (key_hash(e->key, d.key_size) & (d.n_buckets - 1)) != b) {
            a.corrupt("the map entry at offset %llu is in the wrong map or bucket",
                      static_cast<ull>(off));
            return false;
          }
          keep->push_back(off);
          ++n;
          off = e->next;
        }
      }
      if (n != d.count) {
        a.corrupt("shared map %s has %u entries, its descriptor says %u", d.name, n, d.count);
        return false;
      }
      entries += n;
    }
    int rc = each_sock(a, r, [&](SockRec* s, uint64_t* l, uint32_t b) {
      if (sock_bucket(s->cookie) != b)
        return a.corrupt("the socket record of cookie %llu is in the wrong bucket",
                         static_cast<ull>(s->cookie));
      keep->push_back(*l);
      if (!s->holders || !s->entries)
        return a.corrupt("the socket record of cookie %llu has no %s", static_cast<ull>(s->cookie),
                         s->holders ? "entry" : "holder");
      ChainSteps steps(a);
      for (uint64_t h = s->holders; h;) {
        auto* hr = steps.next(a, "holder")
                       ? arena_record<HolderRec>(a, h, kHolderMagic, "holder record")
                       : nullptr;
        if (!hr) return -EUCLEAN;
        keep->push_back(h);
        h = hr->next;
      }
      for (uint64_t off = s->entries; off;) {
        auto* e = steps.next(a, "socket's entry")
                      ? arena_record<EntryRec>(a, off, kEntryMagic, "map entry")
                      : nullptr;
        if (!e) return -EUCLEAN;
        if (e->cookie != s->cookie)
          return a.corrupt("the socket record of cookie %llu links an entry of cookie %llu",
                           static_cast<ull>(s->cookie), static_cast<ull>(e->cookie));
        ++counted;
        off = e->sock_next;
      }
      return 0;
    });
    if (rc < 0) return false;
    if (counted != entries) {
      a.corrupt("the sockets link %llu map entries, the maps hold %llu", static_cast<ull>(counted),
                static_cast<ull>(entries));
      return false;
    }
  } catch (const std::bad_alloc&) {
    a.corrupt("out of memory while checking the shared maps");
    return false;
  }
  return true;
}

}  // namespace sockshim::domain
