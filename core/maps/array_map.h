// BPF_MAP_TYPE_ARRAY (kernel/bpf/arraymap.c): max_entries values of
// value_size bytes, every one present from creation, zeroed, never deleted.
// Values sit round_up(value_size, 8) bytes apart. With BPF_F_MMAPABLE the
// values live in a shared mapping of a memfd that is also the map's fd, so a
// program's mmap of that fd (libbpf's .data, .bss, .rodata) and the map's
// lookups and updates see the same bytes.
#pragma once

#include <cstddef>
#include <memory>

#include "core/maps/bpf_map.h"

namespace sockshim {

class ArrayMap final : public BpfMap {
 public:
  // spec must have passed map_create_check. memfd: the file of an mmapable
  // map (sized and mapped here; the caller keeps the fd), -1 otherwise.
  // -ENOMEM when the memory cannot be had.
  static int create(policy::MapSpec spec, int memfd, std::unique_ptr<ArrayMap>* out) noexcept;
  ~ArrayMap() override;

  // The bytes an mmap of the map's fd may cover (the kernel's
  // bpf_map_mmap_sz): the values rounded up to whole pages.
  static size_t mmap_size(const policy::MapSpec& spec) noexcept;

  int update_sys(const void* key, const void* value, uint64_t flags) noexcept override;
  int lookup_sys(const void* key, void* value) noexcept override;
  int delete_sys(const void* key) noexcept override;  // -EINVAL: arrays keep every element
  int get_next_key_sys(const void* key, void* next_key) noexcept override;

  // The value at index in place (what a program's lookup returns), or null
  // out of range. Valid while the map lives.
  unsigned char* value(uint32_t index) noexcept {
    return index < max_entries() ? base_ + size_t{index} * elem_size_ : nullptr;
  }
  // All the values, for a program's global data (BPF_PSEUDO_MAP_VALUE).
  unsigned char* data() noexcept { return base_; }
  size_t data_size() const noexcept { return size_t{max_entries()} * elem_size_; }

 private:
  ArrayMap(policy::MapSpec spec, unsigned char* base, size_t mapped);

  unsigned char* base_;
  size_t mapped_;     // bytes of the mapping
  size_t elem_size_;  // round_up(value_size, 8)
};

}  // namespace sockshim
