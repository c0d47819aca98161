#include "bpf/context.h"

#include <linux/bpf.h>

#include <array>
#include <cstddef>
#include <utility>

namespace sockshim::bpf {

namespace {

constexpr uint8_t kNarrow4 = 1 | 2 | 4;  // aligned 1, 2 or 4 bytes of a __u32

template <size_t N>
class Builder {
 public:
  // Loads of `sizes` (mask) at every offset of [off, off + len) aligned to the size.
  Builder& read(size_t off, size_t len, uint8_t sizes) {
    for (uint8_t s = 1; s <= 8; s <<= 1)
      if (sizes & s)
        for (size_t o = off; o + s <= off + len; o += s) bytes_[o].read_sizes |= s;
    return *this;
  }
  // Every __u32 in [off, off + len): 4-byte loads only.
  Builder& words(size_t off, size_t len) { return read(off, len, 4); }
  Builder& write(size_t off, size_t len, uint8_t sizes) {
    for (uint8_t s = 1; s <= 8; s <<= 1)
      if (sizes & s)
        for (size_t o = off; o + s <= off + len; o += s) bytes_[o].write_sizes |= s;
    return *this;
  }
  // A pointer field: one load of `size` bytes at its start, yielding the slot.
  Builder& pointer(size_t off, uint8_t size, CtxSlot slot) {
    bytes_[off].read_sizes |= size;
    bytes_[off].slot = static_cast<uint8_t>(slot + 1);
    return *this;
  }
  // Loads of `sizes` at `off` only.
  Builder& at(size_t off, uint8_t sizes) {
    bytes_[off].read_sizes |= sizes;
    return *this;
  }
  // No access at all in [from, to).
  Builder& clear(size_t from, size_t to) {
    for (size_t o = from; o < to; ++o) bytes_[o] = {};
    return *this;
  }
  const std::array<CtxByte, N>& bytes() const { return bytes_; }

 private:
  std::array<CtxByte, N> bytes_{};
};

#define FIELD(s, f) offsetof(struct s, f), sizeof(((struct s*)nullptr)->f)

const std::array<CtxByte, sizeof(sk_msg_md)>& sk_msg_bytes() {
  static const auto b = [] {
    Builder<sizeof(sk_msg_md)> b;
    b.pointer(offsetof(sk_msg_md, data), 8, kSlotData)
        .pointer(offsetof(sk_msg_md, data_end), 8, kSlotDataEnd)
        .pointer(offsetof(sk_msg_md, sk), 8, kSlotSk)
        .words(offsetof(sk_msg_md, family), offsetof(sk_msg_md, sk) - offsetof(sk_msg_md, family));
    return b.bytes();
  }();
  return b;
}

const std::array<CtxByte, sizeof(__sk_buff)>& sk_skb_bytes() {
  static const auto b = [] {
    Builder<sizeof(__sk_buff)> b;
    // The plain __u32 fields: aligned narrow loads.
    const std::pair<size_t, size_t> narrow[] = {{FIELD(__sk_buff, len)},
                                                {FIELD(__sk_buff, pkt_type)},
                                                {FIELD(__sk_buff, queue_mapping)},
                                                {FIELD(__sk_buff, protocol)},
                                                {FIELD(__sk_buff, vlan_present)},
                                                {FIELD(__sk_buff, vlan_tci)},
                                                {FIELD(__sk_buff, vlan_proto)},
                                                {FIELD(__sk_buff, priority)},
                                                {FIELD(__sk_buff, ingress_ifindex)},
                                                {FIELD(__sk_buff, ifindex)},
                                                {FIELD(__sk_buff, tc_index)},
                                                {FIELD(__sk_buff, hash)},
                                                {FIELD(__sk_buff, napi_id)},
                                                {FIELD(__sk_buff, family)},
                                                {FIELD(__sk_buff, remote_port)},
                                                {FIELD(__sk_buff, local_port)},
                                                {FIELD(__sk_buff, gso_segs)},
                                                {FIELD(__sk_buff, gso_size)}};
    for (auto [off, len] : narrow) b.read(off, len, kNarrow4);
    b.read(FIELD(__sk_buff, cb), 1 | 2 | 4 | 8)
        .words(FIELD(__sk_buff, remote_ip4))
        .words(FIELD(__sk_buff, local_ip4))
        .words(FIELD(__sk_buff, remote_ip6))
        .words(FIELD(__sk_buff, local_ip6))
        .pointer(offsetof(__sk_buff, data), 4, kSlotData)
        .pointer(offsetof(__sk_buff, data_end), 4, kSlotDataEnd)
        .pointer(offsetof(__sk_buff, sk), 8, kSlotSk)
        .write(FIELD(__sk_buff, tc_index), 4)
        .write(FIELD(__sk_buff, priority), 4);
    return b.bytes();
  }();
  return b;
}

const std::array<CtxByte, sizeof(bpf_sock_ops)>& sock_ops_bytes() {
  static const auto b = [] {
    Builder<sizeof(bpf_sock_ops)> b;
    // op .. sk_txhash are __u32s (args/reply/replylong share one union).
    b.words(0, offsetof(bpf_sock_ops, bytes_received))
        .read(offsetof(bpf_sock_ops, bytes_received), 16, 8)
        .pointer(offsetof(bpf_sock_ops, sk), 8, kSlotSk)
        .pointer(offsetof(bpf_sock_ops, skb_data), 8, kSlotData)
        .pointer(offsetof(bpf_sock_ops, skb_data_end), 8, kSlotDataEnd)
        .words(FIELD(bpf_sock_ops, skb_len))
        .read(FIELD(bpf_sock_ops, skb_tcp_flags), kNarrow4)
        .write(offsetof(bpf_sock_ops, reply), 4, 4)
        .write(FIELD(bpf_sock_ops, sk_txhash), 4);
    return b.bytes();
  }();
  return b;
}

// bpf_sock_is_valid_access: `common` drops type .. priority, as
// bpf_sock_common_is_valid_access does for a PTR_TO_SOCK_COMMON.
std::array<CtxByte, sizeof(bpf_sock)> bpf_sock_bytes(bool common) {
  Builder<sizeof(bpf_sock)> b;
  // Narrow loads at the field's start only (the kernel's switch matches the
  // start offset), the addresses at any aligned offset, the rest 4 bytes.
  const size_t at_start[] = {offsetof(bpf_sock, state),    offsetof(bpf_sock, family),
                             offsetof(bpf_sock, type),     offsetof(bpf_sock, protocol),
                             offsetof(bpf_sock, src_port), offsetof(bpf_sock, rx_queue_mapping)};
  for (size_t off : at_start) b.at(off, kNarrow4);
  b.read(FIELD(bpf_sock, src_ip4), kNarrow4)
      .read(FIELD(bpf_sock, src_ip6), kNarrow4)
      .read(FIELD(bpf_sock, dst_ip4), kNarrow4)
      .read(FIELD(bpf_sock, dst_ip6), kNarrow4)
      .words(FIELD(bpf_sock, bound_dev_if))
      .words(FIELD(bpf_sock, mark))
      .words(FIELD(bpf_sock, priority))
      .at(offsetof(bpf_sock, dst_port), 4)
      .read(FIELD(bpf_sock, dst_port), 1 | 2);
  if (common) b.clear(offsetof(bpf_sock, type), offsetof(bpf_sock, src_ip4));
  return b.bytes();
}

#undef FIELD

}  // namespace

const char* prog_type_name(ProgType t) {
  switch (t) {
    case ProgType::sk_msg:
      return "sk_msg";
    case ProgType::sk_skb:
      return "sk_skb";
    case ProgType::sock_ops:
      return "sock_ops";
  }
  return "?";
}

const ContextLayout& context_layout(ProgType t) {
  static const ContextLayout layouts[] = {
      {ProgType::sk_msg, sizeof(sk_msg_md), sk_msg_bytes().data()},
      {ProgType::sk_skb, sizeof(__sk_buff), sk_skb_bytes().data()},
      {ProgType::sock_ops, sizeof(bpf_sock_ops), sock_ops_bytes().data()},
  };
  return layouts[static_cast<int>(t)];
}

const ContextLayout& sock_layout(ProgType t) {
  static const auto full = bpf_sock_bytes(false);
  static const auto common = bpf_sock_bytes(true);
  static const ContextLayout layouts[] = {
      {ProgType::sk_msg, sizeof(bpf_sock), full.data()},
      {ProgType::sk_skb, sizeof(bpf_sock), common.data()},
      {ProgType::sock_ops, sizeof(bpf_sock), full.data()},
  };
  return layouts[static_cast<int>(t)];
}

}  // namespace sockshim::bpf
