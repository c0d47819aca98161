#include "core/maps/array_map.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <new>

namespace sockshim {

namespace {

size_t round_up(size_t n, size_t to) noexcept {
  return (n + to - 1) / to * to;
}

size_t elem_size(const policy::MapSpec& s) noexcept {
  return round_up(s.value_size, 8);
}

}  // namespace

size_t ArrayMap::mmap_size(const policy::MapSpec& spec) noexcept {
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return round_up(elem_size(spec) * spec.max_entries, page);
}

int ArrayMap::create(policy::MapSpec spec, int memfd, std::unique_ptr<ArrayMap>* out) noexcept {
  size_t bytes = mmap_size(spec);
  void* p;
  if (memfd >= 0) {
    if (ftruncate(memfd, static_cast<off_t>(bytes)) != 0) return -ENOMEM;
    p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  } else {
    // Untouched pages cost nothing, as in the kernel's zeroed vmalloc area.
    p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  }
  if (p == MAP_FAILED) return -ENOMEM;
  out->reset(new (std::nothrow) ArrayMap(std::move(spec), static_cast<unsigned char*>(p), bytes));
  if (!*out) {
    munmap(p, bytes);
    return -ENOMEM;
  }
  return 0;
}

ArrayMap::ArrayMap(policy::MapSpec spec, unsigned char* base, size_t mapped)
    : BpfMap(std::move(spec)), base_(base), mapped_(mapped), elem_size_(elem_size(this->spec())) {}

ArrayMap::~ArrayMap() {
  munmap(base_, mapped_);
}

int ArrayMap::update_sys(const void* key, const void* value, uint64_t flags) noexcept {
  // array_map_update_elem
  if ((flags & ~BPF_F_LOCK) > BPF_EXIST) return -EINVAL;
  unsigned char* v = this->value(read_index(key));
  if (!v) return -E2BIG;  // every element exists: there is none to add
  if (flags & BPF_NOEXIST) return -EEXIST;
  std::memcpy(v, value, value_size());
  return 0;
}

int ArrayMap::lookup_sys(const void* key, void* value) noexcept {
  const unsigned char* v = this->value(read_index(key));
  if (!v) return -ENOENT;
  std::memcpy(value, v, value_size());
  return 0;
}

int ArrayMap::delete_sys(const void*) noexcept {
  return -EINVAL;
}

int ArrayMap::get_next_key_sys(const void* key, void* next_key) noexcept {
  return index_get_next_key(key, max_entries(), next_key);
}

}  // namespace sockshim
