#include "core/domain/arena.h"

#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>

namespace sockshim::domain {
namespace {

uint64_t block_size(const BlockHeader* b) noexcept {
  return b->size_used & ~uint64_t{1};
}
bool block_used(const BlockHeader* b) noexcept {
  return b->size_used & 1;
}

}  // namespace

int Arena::corrupt(const char* fmt, ...) noexcept {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why_, sizeof why_, fmt, ap);
  va_end(ap);
  return -EUCLEAN;
}

// The header of the block at off, checked to lie whole inside the heap, or
// nullptr (why_ says what is wrong).
BlockHeader* Arena::block(uint64_t off, const char* what) noexcept {
  if (off < kHeapStart || off >= size_ || off % kBlockAlign != 0 || size_ - off < kMinBlock) {
    corrupt("%s at offset %llu is outside the heap [%llu, %llu) or misaligned", what,
            static_cast<unsigned long long>(off), static_cast<unsigned long long>(kHeapStart),
            static_cast<unsigned long long>(size_));
    return nullptr;
  }
  auto* b = reinterpret_cast<BlockHeader*>(base_ + off);
  uint64_t n = block_size(b);
  if (n < kMinBlock || n % kBlockAlign != 0 || n > size_ - off) {
    corrupt("%s at offset %llu has size %llu, which does not fit the heap", what,
            static_cast<unsigned long long>(off), static_cast<unsigned long long>(n));
    return nullptr;
  }
  return b;
}

int Arena::format(void* base, uint64_t size, std::string_view key) noexcept {
  if (size < kMinArenaSize || size % kBlockAlign != 0 || key.size() >= kMaxKeyBytes) return -EINVAL;
  memset(base, 0, kHeapStart);
  auto* h = new (base) ArenaHeader{};
  h->version = kArenaVersion;
  h->header_size = sizeof(ArenaHeader);
  h->size = size;
  if (int r = h->lock.init(); r < 0) return r;
  h->key_len = static_cast<uint32_t>(key.size());
  memcpy(h->key, key.data(), key.size());
  auto* first = reinterpret_cast<BlockHeader*>(static_cast<char*>(base) + kHeapStart);
  first->size_used = size - kHeapStart;
  first->next_free = 0;
  h->free_head = kHeapStart;
  h->magic = kArenaMagic;  // last: a half-written file is never taken for an arena
  return 0;
}

int Arena::check_header(std::string_view key) noexcept {
  if (size_ < kMinArenaSize)
    return corrupt("the file has %llu bytes, fewer than the %llu of an arena header and heap",
                   static_cast<unsigned long long>(size_),
                   static_cast<unsigned long long>(kMinArenaSize));
  const ArenaHeader* h = header();
  if (h->magic != kArenaMagic)
    return corrupt("bad magic 0x%016llx (expected 0x%016llx): not a sockshim domain arena",
                   static_cast<unsigned long long>(h->magic),
                   static_cast<unsigned long long>(kArenaMagic));
  if (h->version != kArenaVersion)
    return corrupt("arena version %u, this sockshim speaks version %u", h->version, kArenaVersion);
  if (h->header_size != sizeof(ArenaHeader))
    return corrupt("header size %u, expected %zu", h->header_size, sizeof(ArenaHeader));
  if (h->size != size_)
    return corrupt("the header says %llu bytes but the file has %llu (truncated or grown)",
                   static_cast<unsigned long long>(h->size),
                   static_cast<unsigned long long>(size_));
  if (h->key_len >= kMaxKeyBytes || std::string_view(h->key, h->key_len) != key)
    return corrupt("the arena belongs to another domain key (%.*s), not %.*s",
                   static_cast<int>(h->key_len < 200 ? h->key_len : 200), h->key,
                   static_cast<int>(key.size() < 200 ? key.size() : 200), key.data());
  return 0;
}

int Arena::check(std::string_view key) noexcept {
  if (int r = check_header(key); r < 0) return r;
  const ArenaHeader* h = header();
  uint64_t used = 0, next_free = h->free_head;
  bool root_found = h->root == 0, maps_found = h->maps_root == 0;
  bool storage_found = h->storage == 0, policy_found = h->policy == 0;
  for (uint64_t off = kHeapStart; off != size_;) {
    BlockHeader* b = block(off, "a block");
    if (!b) return -EUCLEAN;
    if (block_used(b)) {
      if (b->next_free != kUsedTag)
        return corrupt("the used block at offset %llu has a broken tag",
                       static_cast<unsigned long long>(off));
      used += block_size(b);
      root_found |= h->root == off + sizeof(BlockHeader);
      maps_found |= h->maps_root == off + sizeof(BlockHeader);
      storage_found |= h->storage == off + sizeof(BlockHeader);
      policy_found |= h->policy == off + sizeof(BlockHeader);
    } else {
      if (next_free != off)
        return corrupt("the free block at offset %llu is not where the free list goes (%llu)",
                       static_cast<unsigned long long>(off),
                       static_cast<unsigned long long>(next_free));
      next_free = b->next_free;
      if (next_free != 0 && next_free <= off)
        return corrupt("the free list goes backwards at offset %llu",
                       static_cast<unsigned long long>(off));
    }
    off += block_size(b);
  }
  if (next_free != 0)
    return corrupt("the free list goes on to offset %llu, past the last free block",
                   static_cast<unsigned long long>(next_free));
  if (used != h->used_bytes)
    return corrupt("used blocks add up to %llu bytes, the header says %llu",
                   static_cast<unsigned long long>(used),
                   static_cast<unsigned long long>(h->used_bytes));
  if (!root_found)
    return corrupt("the root offset %llu is not a used block",
                   static_cast<unsigned long long>(h->root));
  if (!maps_found)
    return corrupt("the maps root offset %llu is not a used block",
                   static_cast<unsigned long long>(h->maps_root));
  if (!storage_found)
    return corrupt("the storage root offset %llu is not a used block",
                   static_cast<unsigned long long>(h->storage));
  if (!policy_found)
    return corrupt("the policy root offset %llu is not a used block",
                   static_cast<unsigned long long>(h->policy));
  return 0;
}

int Arena::rebuild(const uint64_t* keep, size_t n_keep) noexcept {
  ArenaHeader* h = header();
  uint64_t used = 0, last_free = 0;
  uint64_t* link = &h->free_head;
  size_t k = 0;
  for (uint64_t off = kHeapStart; off != size_;) {
    BlockHeader* b = block(off, "a block");
    if (!b) return -EUCLEAN;
    uint64_t n = block_size(b);
    uint64_t payload = off + sizeof(BlockHeader);
    while (keep && k < n_keep && keep[k] < payload) ++k;
    bool kept = !keep || (k < n_keep && keep[k] == payload);
    if (block_used(b) && kept) {
      b->next_free = kUsedTag;
      used += n;
      last_free = 0;
    } else if (last_free != 0) {  // merge into the free block just before
      auto* prev = reinterpret_cast<BlockHeader*>(base_ + last_free);
      prev->size_used = block_size(prev) + n;
    } else {
      b->next_free = 0;
      b->size_used = n;
      *link = off;
      link = &b->next_free;
      last_free = off;
    }
    off += n;
  }
  *link = 0;
  h->used_bytes = used;
  bump();
  return 0;
}

uint64_t Arena::alloc(uint64_t bytes, int* err) noexcept {
  ArenaHeader* h = header();
  if (bytes > size_) {
    *err = -ENOMEM;
    return 0;
  }
  uint64_t need = (bytes + sizeof(BlockHeader) + kBlockAlign - 1) / kBlockAlign * kBlockAlign;
  if (need < kMinBlock) need = kMinBlock;
  uint64_t* link = &h->free_head;
  for (uint64_t off = *link; off != 0; off = *link) {
    BlockHeader* b = block(off, "a free block");
    if (!b || block_used(b) || (b->next_free != 0 && b->next_free <= off)) {
      if (b)
        corrupt("the free list is broken at offset %llu", static_cast<unsigned long long>(off));
      *err = -EUCLEAN;
      return 0;
    }
    uint64_t n = block_size(b);
    if (n < need) {
      link = &b->next_free;
      continue;
    }
    if (n - need >= kMinBlock) {  // split: the rest stays free, after it
      auto* rest = reinterpret_cast<BlockHeader*>(base_ + off + need);
      rest->next_free = b->next_free;
      rest->size_used = n - need;
      b->size_used = need | 1;
      *link = off + need;
    } else {
      need = n;
      b->size_used = n | 1;
      *link = b->next_free;
    }
    b->next_free = kUsedTag;
    h->used_bytes += need;
    memset(b + 1, 0, need - sizeof(BlockHeader));
    bump();
    return off + sizeof(BlockHeader);
  }
  *err = -ENOMEM;
  return 0;
}

uint64_t Arena::payload_size(uint64_t payload) noexcept {
  if (payload < kHeapStart + sizeof(BlockHeader)) return 0;
  BlockHeader* b = block(payload - sizeof(BlockHeader), "a used block");
  if (!b || !block_used(b) || b->next_free != kUsedTag) return 0;
  return block_size(b) - sizeof(BlockHeader);
}

int Arena::free(uint64_t payload) noexcept {
  ArenaHeader* h = header();
  if (payload_size(payload) == 0)
    return corrupt("free of offset %llu, which is not a used block",
                   static_cast<unsigned long long>(payload));
  uint64_t off = payload - sizeof(BlockHeader);
  auto* b = reinterpret_cast<BlockHeader*>(base_ + off);
  uint64_t n = block_size(b);
  // The free neighbours: prev the last free block below, next the first above.
  uint64_t* link = &h->free_head;
  BlockHeader* prev = nullptr;
  uint64_t prev_off = 0;
  while (*link != 0 && *link < off) {
    BlockHeader* f = block(*link, "a free block");
    if (!f || block_used(f) || (f->next_free != 0 && f->next_free <= *link))
      return f ? corrupt("the free list is broken at offset %llu",
                         static_cast<unsigned long long>(*link))
               : -EUCLEAN;
    prev = f;
    prev_off = *link;
    link = &f->next_free;
  }
  uint64_t next_off = *link;
  b->next_free = next_off;
  b->size_used = n;
  *link = off;
  h->used_bytes -= n;
  if (next_off == off + n) {
    BlockHeader* next = block(next_off, "a free block");
    if (!next || block_used(next)) return next ? corrupt("the free list is broken") : -EUCLEAN;
    b->next_free = next->next_free;
    b->size_used = n + block_size(next);
  }
  if (prev && prev_off + block_size(prev) == off) {
    prev->next_free = b->next_free;
    prev->size_used = block_size(prev) + block_size(b);
  }
  bump();
  return 0;
}

}  // namespace sockshim::domain
