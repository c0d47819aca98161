/* sockshim C API: user-space operations on the maps of the loaded policy.
 *
 * For programs that run under sockshim and manage map entries themselves, as
 * they would with libbpf's bpf_map_*_elem on a kernel map. Maps are named as in
 * the policy. Every call returns 0 or a negative errno, like libbpf, and the
 * errno is the kernel's for the same call on the same kind of map and socket.
 *
 * Keys:
 *   sockmap     uint32_t index
 *   sockhash    the fields of the map's "key" layout, in order: each a uint32_t
 *               (local_ip4/remote_ip4 in network byte order, ports and family in
 *               host byte order), 16 bytes for local_ip6/remote_ip6, 8 for u64
 *   sk_storage  the socket's int fd
 * Values:
 *   sockmap/sockhash update: the socket's fd, as uint32_t when the map's
 *     value_size is 4, as uint64_t when it is 8; lookup writes the socket's
 *     uint64_t cookie (value_size 8; value_size 4 gives -ENOSPC)
 *   sk_storage: value_size bytes of the map's value layout
 * Flags: BPF_ANY (0), BPF_NOEXIST (1), BPF_EXIST (2).
 *
 * Errors beyond the kernel's: a name no loaded map has gives -EBADF (what a
 * bad map fd gives); a null key or value where one is needed gives -EFAULT.
 *
 * The functions are exported by libsockshim.so; a program that must also run
 * without the shim can find them with dlsym(RTLD_DEFAULT, "sockshim_...").
 */
#ifndef SOCKSHIM_H
#define SOCKSHIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

int sockshim_map_update_elem(const char *map, const void *key, const void *value,
                             uint64_t flags);
int sockshim_map_lookup_elem(const char *map, const void *key, void *value);
int sockshim_map_delete_elem(const char *map, const void *key);
/* key NULL: the first key. sockmap walks indices (empty slots included),
   sockhash walks its entries, sk_storage gives -ENOTSUPP (524). */
int sockshim_map_get_next_key(const char *map, const void *key, void *next_key);
/* The kernel's SO_COOKIE of fd (what lookups return), 0 if fd is not a socket. */
uint64_t sockshim_socket_cookie(int fd);

#ifdef __cplusplus
}
#endif

#endif /* SOCKSHIM_H */
