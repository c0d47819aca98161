// The kernel helpers a running program calls, as an interface the core
// implements for real sockets and `sockshim test-run` implements with fake ones.
// One Helpers object acts for "the current socket": the socket the program runs
// on (msg->sk, skb->sk, skops->sk). Maps are named by their index in
// Policy::maps.
#pragma once

#include <cerrno>
#include <cstdint>
#include <span>
#include <string_view>

#include "policy/spec.h"

namespace sockshim::policy {

class Program;

class Helpers {
 public:
  virtual ~Helpers() = default;

  // bpf_msg_redirect_map / bpf_sk_redirect_map (sockmap, key an index) and
  // bpf_msg_redirect_hash / bpf_sk_redirect_hash (sockhash, key the layout's
  // bytes). Records the target for the verdict and returns SK_PASS, or SK_DROP
  // for a missing key or a target the kernel refuses (sock_map_redirect_allowed).
  // flags is 0 or BPF_F_INGRESS: the program returns SK_DROP for any other flag
  // without calling the helper.
  virtual int redirect(uint32_t map, std::span<const uint8_t> key, uint64_t flags) = 0;

  // bpf_sk_storage_get: the current socket's value in sk_storage map `map`
  // (MapSpec::value_size bytes), nullptr when there is none; with create, a
  // missing value is added zero-filled first. Writes through the pointer are
  // the program's stores.
  virtual uint8_t* storage_get(uint32_t map, bool create) = 0;

  // bpf_sk_storage_delete: 0 or -ENOENT.
  virtual long storage_delete(uint32_t map) = 0;

  // bpf_sock_map_update / bpf_sock_hash_update / bpf_map_update_elem with the
  // current socket as the value: 0 or the kernel's -errno. Sockops programs
  // call it only in sock_map_op_okay() ops (-EOPNOTSUPP otherwise, without a call).
  virtual long map_update(uint32_t map, std::span<const uint8_t> key, uint64_t flags) = 0;

  // bpf_map_delete_elem: 0 or -errno (sockmap: -EINVAL for an empty slot or an
  // index out of range; sockhash and hash: -ENOENT; array: always -EINVAL).
  virtual long map_delete(uint32_t map, std::span<const uint8_t> key) = 0;

  // bpf_map_lookup_elem on an ARRAY or HASH map: the value of key in place
  // (MapSpec::value_size bytes, the program's to read and write for the run),
  // nullptr when there is none. Helpers without such maps have none.
  virtual uint8_t* map_lookup(uint32_t /*map*/, std::span<const uint8_t> /*key*/) {
    return nullptr;
  }

  // bpf_map_update_elem on an ARRAY or HASH map: 0 or the kernel's -errno
  // (-EINVAL for flags, -EEXIST for BPF_NOEXIST, -ENOENT for BPF_EXIST, -E2BIG).
  virtual long map_update_value(uint32_t /*map*/, std::span<const uint8_t> /*key*/,
                                const uint8_t* /*value*/, uint64_t /*flags*/) {
    return -EINVAL;
  }

  // A `log` action: text from the policy, for a line naming the current socket.
  // Bytecode programs log their bpf_trace_printk lines and faults through it.
  virtual void log(const Program& program, std::string_view text) = 0;

  // The definition of map `map` (type, key and value sizes), nullptr for an
  // index that names no map: bytecode programs pass map references the
  // interpreter checks against it.
  virtual const MapSpec* map_spec(uint32_t map) = 0;

  // bpf_get_socket_cookie: the current socket's SO_COOKIE.
  virtual uint64_t socket_cookie() = 0;
};

}  // namespace sockshim::policy
