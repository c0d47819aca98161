// The C API of sockshim.h: thin wrappers over core's by-name map operations on
// the installed MapTable. Nothing here throws.
#include "shim/sockshim.h"

#include "core/maps/bpf_syscall.h"

#define SOCKSHIM_API extern "C" __attribute__((visibility("default")))

SOCKSHIM_API int sockshim_map_update_elem(const char* map, const void* key, const void* value,
                                          uint64_t flags) {
  return sockshim::map_update_elem(map, key, value, flags);
}

SOCKSHIM_API int sockshim_map_lookup_elem(const char* map, const void* key, void* value) {
  return sockshim::map_lookup_elem(map, key, value);
}

SOCKSHIM_API int sockshim_map_delete_elem(const char* map, const void* key) {
  return sockshim::map_delete_elem(map, key);
}

SOCKSHIM_API int sockshim_map_get_next_key(const char* map, const void* key, void* next_key) {
  return sockshim::map_get_next_key(map, key, next_key);
}

SOCKSHIM_API uint64_t sockshim_socket_cookie(int fd) {
  return sockshim::socket_cookie(fd);
}
