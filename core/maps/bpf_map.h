// The common shape of the emulated maps: a MapSpec and the four user-space
// operations of the bpf() syscall, each returning 0 or a negative errno in the
// order the kernel checks.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "policy/spec.h"

namespace sockshim {

// Update flags and map flags (include/uapi/linux/bpf.h) that core checks.
inline constexpr uint64_t BPF_ANY = 0;
inline constexpr uint64_t BPF_NOEXIST = 1;
inline constexpr uint64_t BPF_EXIST = 2;
inline constexpr uint64_t BPF_F_LOCK = 4;
inline constexpr uint32_t BPF_F_NUMA_NODE = 1u << 2;
inline constexpr uint32_t BPF_F_RDONLY = 1u << 3;
inline constexpr uint32_t BPF_F_WRONLY = 1u << 4;
inline constexpr uint32_t BPF_F_NO_COMMON_LRU = 1u << 1;
inline constexpr uint32_t BPF_F_ZERO_SEED = 1u << 6;
inline constexpr uint32_t BPF_F_RDONLY_PROG = 1u << 7;
inline constexpr uint32_t BPF_F_WRONLY_PROG = 1u << 8;
inline constexpr uint32_t BPF_F_MMAPABLE = 1u << 10;
inline constexpr uint32_t BPF_F_PRESERVE_ELEMS = 1u << 11;
inline constexpr uint32_t BPF_F_INNER_MAP = 1u << 12;

// The kernel's ENOTSUPP (not EOPNOTSUPP), which sk_storage get_next_key gives.
inline constexpr int ENOTSUPP_KERNEL = 524;
// MAX_BPF_STACK: no map key is larger (a sockhash's would be E2BIG).
inline constexpr uint32_t kMaxBpfStack = 512;

class BpfMap {
 public:
  explicit BpfMap(policy::MapSpec spec) : spec_(std::move(spec)) {}
  virtual ~BpfMap() = default;
  BpfMap(const BpfMap&) = delete;
  BpfMap& operator=(const BpfMap&) = delete;

  const policy::MapSpec& spec() const noexcept { return spec_; }
  const std::string& name() const noexcept { return spec_.name; }
  policy::MapType type() const noexcept { return spec_.type; }
  uint32_t key_size() const noexcept { return spec_.key_size; }
  uint32_t value_size() const noexcept { return spec_.value_size; }
  uint32_t max_entries() const noexcept { return spec_.max_entries; }

  // The map's own part of each syscall (after the generic checks of
  // bpf_syscall.h). key and value point at key_size and value_size bytes; key
  // may be null for get_next_key.
  virtual int update_sys(const void* key, const void* value, uint64_t flags) noexcept = 0;
  virtual int lookup_sys(const void* key, void* value) noexcept = 0;
  virtual int delete_sys(const void* key) noexcept = 0;
  virtual int get_next_key_sys(const void* key, void* next_key) noexcept = 0;

  // In a fork child: locks held by threads that do not exist there are freed.
  virtual void after_fork_child() noexcept {}

 private:
  policy::MapSpec spec_;
};

// The index-keyed maps (sockmap, array): a key is a uint32_t index.
inline uint32_t read_index(const void* key) noexcept {
  uint32_t i;
  std::memcpy(&i, key, sizeof i);
  return i;
}

// Their get_next_key (sock_map_get_next_key, array_map_get_next_key): walks
// indices, not entries; no key or one out of range starts at 0.
int index_get_next_key(const void* key, uint32_t max_entries, void* next_key) noexcept;

// The map_create checks of sock_map_alloc, sock_hash_alloc,
// bpf_local_storage_map_alloc_check, array_map_alloc_check and
// htab_map_alloc_check (with htab_map_alloc's size limits): 0, -EINVAL,
// -E2BIG, or -EPERM for BPF_F_ZERO_SEED (CAP_SYS_ADMIN only).
int map_create_check(const policy::MapSpec& spec) noexcept;

}  // namespace sockshim
