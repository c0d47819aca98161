#include "core/maps/bpf_map.h"

#include <errno.h>

namespace sockshim {

namespace {

// SOCK_CREATE_FLAG_MASK in net/core/sock_map.c.
constexpr uint32_t kSockCreateFlags = BPF_F_NUMA_NODE | BPF_F_RDONLY | BPF_F_WRONLY;
// BPF_LOCAL_STORAGE_MAX_VALUE_SIZE: U16_MAX less the element header.
constexpr uint32_t kSkStorageMaxValue = 0xffff - 128;
// Beyond this the bucket count would not fit 32 bits.
constexpr uint32_t kMaxSockHashEntries = 1u << 31;
// BPF_F_ACCESS_MASK, and ARRAY_CREATE_FLAG_MASK / HTAB_CREATE_FLAG_MASK
// (kernel/bpf/arraymap.c, hashtab.c).
constexpr uint32_t kAccessFlags =
    BPF_F_RDONLY | BPF_F_RDONLY_PROG | BPF_F_WRONLY | BPF_F_WRONLY_PROG;
constexpr uint32_t kArrayCreateFlags =
    BPF_F_NUMA_NODE | BPF_F_MMAPABLE | kAccessFlags | BPF_F_PRESERVE_ELEMS | BPF_F_INNER_MAP;
constexpr uint32_t kHashCreateFlags = policy::BPF_F_NO_PREALLOC | BPF_F_NO_COMMON_LRU |
                                      BPF_F_NUMA_NODE | kAccessFlags | BPF_F_ZERO_SEED;
// KMALLOC_MAX_SIZE on x86-64 less sizeof(struct htab_elem): a hash element
// must fit one kmalloc.
constexpr uint64_t kMaxHashElem = (4u << 20) - 48;
// htab_map_alloc: n_buckets * sizeof(struct bucket) must fit 32 bits.
constexpr uint32_t kMaxHashEntries = 1u << 28;

bool sock_value_size(uint32_t v) noexcept {
  return v == 4 || v == 8;
}

// bpf_map_flags_access_ok: a program cannot be both read-only and write-only.
bool access_ok(uint32_t flags) noexcept {
  return (flags & (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG)) !=
         (BPF_F_RDONLY_PROG | BPF_F_WRONLY_PROG);
}

}  // namespace

int map_create_check(const policy::MapSpec& s) noexcept {
  switch (s.type) {
    case policy::MapType::sockmap:
      if (s.max_entries == 0 || s.key_size != 4 || !sock_value_size(s.value_size) ||
          (s.flags & ~kSockCreateFlags))
        return -EINVAL;
      return 0;
    case policy::MapType::sockhash:
      if (s.max_entries == 0 || s.key_size == 0 || !sock_value_size(s.value_size) ||
          (s.flags & ~kSockCreateFlags))
        return -EINVAL;
      if (s.key_size > kMaxBpfStack) return -E2BIG;
      if (s.max_entries > kMaxSockHashEntries) return -ENOMEM;
      return 0;
    case policy::MapType::sk_storage:
      if ((s.flags & ~(policy::BPF_F_NO_PREALLOC | policy::BPF_F_CLONE)) ||
          !(s.flags & policy::BPF_F_NO_PREALLOC) || s.max_entries != 0 || s.key_size != 4 ||
          s.value_size == 0)
        return -EINVAL;
      if (s.value_size > kSkStorageMaxValue) return -E2BIG;
      return 0;
    case policy::MapType::array:
      if (s.max_entries == 0 || s.key_size != 4 || s.value_size == 0 ||
          (s.flags & ~kArrayCreateFlags) || !access_ok(s.flags) || (s.flags & BPF_F_PRESERVE_ELEMS))
        return -EINVAL;
      if (s.value_size > INT32_MAX) return -E2BIG;
      return 0;
    case policy::MapType::hash:
      if (s.flags & BPF_F_ZERO_SEED) return -EPERM;
      if ((s.flags & ~kHashCreateFlags) || !access_ok(s.flags) || (s.flags & BPF_F_NO_COMMON_LRU))
        return -EINVAL;
      if (s.max_entries == 0 || s.key_size == 0 || s.value_size == 0) return -EINVAL;
      if (uint64_t{s.key_size} + s.value_size >= kMaxHashElem || s.max_entries > kMaxHashEntries)
        return -E2BIG;
      return 0;
  }
  return -EINVAL;
}

int index_get_next_key(const void* key, uint32_t max_entries, void* next_key) noexcept {
  uint32_t i = key ? read_index(key) : UINT32_MAX;
  uint32_t next;
  if (i >= max_entries)
    next = 0;
  else if (i == max_entries - 1)
    return -ENOENT;
  else
    next = i + 1;
  std::memcpy(next_key, &next, sizeof next);
  return 0;
}

}  // namespace sockshim
