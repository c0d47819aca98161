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

}  // namespace sockshim::bpf
