#include "bpf/helpers.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <span>

namespace sockshim::bpf {

namespace {

#define SOCKSHIM_HELPER_NAME(x) #x
constexpr const char* kNames[] = {__BPF_FUNC_MAPPER(SOCKSHIM_HELPER_NAME)};
#undef SOCKSHIM_HELPER_NAME
static_assert(std::size(kNames) == kMaxHelperId);

// The base set of bpf_base_func_proto and bpf_sk_base_func_proto that the
// three socket program types inherit.
constexpr int32_t kBase[] = {
    BPF_FUNC_map_lookup_elem,
    BPF_FUNC_map_update_elem,
    BPF_FUNC_map_delete_elem,
    BPF_FUNC_map_push_elem,
    BPF_FUNC_map_pop_elem,
    BPF_FUNC_map_peek_elem,
    BPF_FUNC_get_prandom_u32,
    BPF_FUNC_get_smp_processor_id,
    BPF_FUNC_get_numa_node_id,
    BPF_FUNC_tail_call,
    BPF_FUNC_ktime_get_ns,
    BPF_FUNC_ktime_get_boot_ns,
    BPF_FUNC_ktime_get_coarse_ns,
    BPF_FUNC_jiffies64,
    BPF_FUNC_trace_printk,
    BPF_FUNC_snprintf,
    BPF_FUNC_loop,
    BPF_FUNC_strncmp,
    BPF_FUNC_for_each_map_elem,
    BPF_FUNC_ringbuf_output,
    BPF_FUNC_ringbuf_reserve,
    BPF_FUNC_ringbuf_submit,
    BPF_FUNC_ringbuf_discard,
    BPF_FUNC_ringbuf_query,
    BPF_FUNC_spin_lock,
    BPF_FUNC_spin_unlock,
};

// sk_msg_func_proto
constexpr int32_t kSkMsg[] = {
    BPF_FUNC_msg_redirect_map,
    BPF_FUNC_msg_redirect_hash,
    BPF_FUNC_msg_apply_bytes,
    BPF_FUNC_msg_cork_bytes,
    BPF_FUNC_msg_pull_data,
    BPF_FUNC_msg_push_data,
    BPF_FUNC_msg_pop_data,
    BPF_FUNC_perf_event_output,
    BPF_FUNC_get_current_uid_gid,
    BPF_FUNC_get_current_pid_tgid,
    BPF_FUNC_sk_storage_get,
    BPF_FUNC_sk_storage_delete,
    BPF_FUNC_get_netns_cookie,
    BPF_FUNC_get_current_cgroup_id,
    BPF_FUNC_get_current_ancestor_cgroup_id,
    BPF_FUNC_get_cgroup_classid,
};

// sk_skb_func_proto
constexpr int32_t kSkSkb[] = {
    BPF_FUNC_skb_store_bytes,   BPF_FUNC_skb_load_bytes,    BPF_FUNC_skb_pull_data,
    BPF_FUNC_skb_change_tail,   BPF_FUNC_skb_change_head,   BPF_FUNC_skb_adjust_room,
    BPF_FUNC_get_socket_cookie, BPF_FUNC_get_socket_uid,    BPF_FUNC_sk_redirect_map,
    BPF_FUNC_sk_redirect_hash,  BPF_FUNC_perf_event_output, BPF_FUNC_sk_lookup_tcp,
    BPF_FUNC_sk_lookup_udp,     BPF_FUNC_sk_release,        BPF_FUNC_skc_lookup_tcp,
};

// sock_ops_func_proto
constexpr int32_t kSockOps[] = {
    BPF_FUNC_setsockopt,        BPF_FUNC_getsockopt,        BPF_FUNC_sock_ops_cb_flags_set,
    BPF_FUNC_sock_map_update,   BPF_FUNC_sock_hash_update,  BPF_FUNC_get_socket_cookie,
    BPF_FUNC_get_local_storage, BPF_FUNC_perf_event_output, BPF_FUNC_sk_storage_get,
    BPF_FUNC_sk_storage_delete, BPF_FUNC_get_netns_cookie,  BPF_FUNC_load_hdr_opt,
    BPF_FUNC_store_hdr_opt,     BPF_FUNC_reserve_hdr_opt,   BPF_FUNC_tcp_sock,
};

using Allowed = std::array<bool, kMaxHelperId>;

Allowed make_allowed(std::span<const int32_t> specific) {
  Allowed a{};
  for (int32_t id : kBase) a[id] = true;
  for (int32_t id : specific) a[id] = true;
  return a;
}

}  // namespace

const char* helper_name(int32_t id) {
  if (id < 0 || id >= kMaxHelperId) return nullptr;
  return kNames[id];
}

bool helper_allowed(ProgType t, int32_t id) {
  static const Allowed sk_msg = make_allowed(kSkMsg);
  static const Allowed sk_skb = make_allowed(kSkSkb);
  static const Allowed sock_ops = make_allowed(kSockOps);
  if (id <= 0 || id >= kMaxHelperId) return false;
  switch (t) {
    case ProgType::sk_msg:
      return sk_msg[id];
    case ProgType::sk_skb:
      return sk_skb[id];
    case ProgType::sock_ops:
      return sock_ops[id];
  }
  return false;
}

}  // namespace sockshim::bpf
