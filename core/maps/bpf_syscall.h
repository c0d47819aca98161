// The bpf() map commands from user space: the syscall's generic checks
// (kernel/bpf/syscall.c: map permissions, BPF_F_LOCK) before the map's own, in
// the kernel's order. Each returns 0 or a negative errno, like libbpf.
#pragma once

#include <cstdint>

#include "core/maps/bpf_map.h"

namespace sockshim {

int map_update_elem(BpfMap& map, const void* key, const void* value, uint64_t flags) noexcept;
int map_lookup_elem(BpfMap& map, const void* key, void* value) noexcept;
int map_delete_elem(BpfMap& map, const void* key) noexcept;
// key null: the first key.
int map_get_next_key(BpfMap& map, const void* key, void* next_key) noexcept;

// The same on the installed table's map of that name (the C API). A name no
// loaded map has gives -EBADF, as a bad map fd does; null pointers -EFAULT.
int map_update_elem(const char* name, const void* key, const void* value, uint64_t flags) noexcept;
int map_lookup_elem(const char* name, const void* key, void* value) noexcept;
int map_delete_elem(const char* name, const void* key) noexcept;
int map_get_next_key(const char* name, const void* key, void* next_key) noexcept;

// The kernel's SO_COOKIE of fd, 0 when fd is not a socket.
uint64_t socket_cookie(int fd) noexcept;

}  // namespace sockshim
