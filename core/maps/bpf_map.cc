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

bool sock_value_size(uint32_t v) noexcept {
  return v == 4 || v == 8;
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
  }
  return -EINVAL;
}

}  // namespace sockshim
