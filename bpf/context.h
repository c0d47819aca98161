// The program contexts: which bytes of the kernel's context structs a program
// of each type may load or store, and with which sizes, as the kernel's
// *_is_valid_access functions in net/core/filter.c decide. The VM consults the
// table on every context access, since without a verifier it only learns at
// run time that a register points into the context.
#pragma once

#include <cstdint>

namespace sockshim::bpf {

enum class ProgType : uint8_t { sk_msg, sk_skb, sock_ops };

const char* prog_type_name(ProgType t);

// The pointer-valued context fields. A load of such a field yields the value
// the caller put in RunInput::ctx_ptrs[slot], whatever the field's width in
// the struct: `__sk_buff.data` is a __u32 in the uapi but the kernel rewrites
// its load into a 64-bit pointer load, and so does the VM.
enum CtxSlot : uint8_t { kSlotData = 0, kSlotDataEnd = 1, kSlotSk = 2, kCtxSlots = 3 };

// Per context byte: which access sizes may start here (bit n: 1 << n bytes),
// for reads and for writes, and whether the field is a pointer slot.
struct CtxByte {
  uint8_t read_sizes = 0;  // a mask of the sizes 1, 2, 4, 8 (size n is bit value n)
  uint8_t write_sizes = 0;
  uint8_t slot = 0;  // 0: plain bytes; n: pointer slot n - 1
};

struct ContextLayout {
  ProgType type;
  uint32_t size;         // sizeof the uapi struct
  const CtxByte* bytes;  // `size` entries

  // May a load (write = false) or store of `size` bytes at `off` happen?
  bool allows(uint32_t off, uint32_t size, bool write) const {
    if (off >= this->size) return false;
    const CtxByte& b = bytes[off];
    // size is 1, 2, 4 or 8: its own bit in the masks.
    return ((write ? b.write_sizes : b.read_sizes) & size) != 0;
  }
};

// The layouts (built once, immutable):
// - sk_msg: `struct sk_msg_md`, read only. data, data_end, sk: 8-byte loads
//   (slots); family .. size: 4-byte loads only.
// - sk_skb: the `struct __sk_buff` subset sk_skb_is_valid_access allows.
//   Writable: tc_index, priority (4 bytes). Not accessible: mark, tc_classid,
//   data_meta, flow_keys, tstamp, wire_len, tstamp_type, hwtstamp, padding.
//   data, data_end: 4-byte loads yielding the 64-bit pointer (slots); sk: an
//   8-byte load (slot); the ip fields: 4-byte loads; cb[]: any aligned size
//   up to 8 within cb; the other __u32 fields: aligned narrow loads (1, 2, 4).
// - sock_ops: `struct bpf_sock_ops`. Writable: reply (args[0]) and sk_txhash,
//   4 bytes. Loads: 4 bytes on __u32 fields, 8 on bytes_received/bytes_acked,
//   sk, skb_data, skb_data_end (slots), skb_tcp_flags also narrow.
// The upper half of an 8-byte pointer field is never accessible (the kernel
// closed that hole with bpf_ctx_range_ptr).
//
// Byte order, as the kernel presents the socket (the caller fills the struct):
// remote_ip4/local_ip4/ip6 words are in network order; remote_port holds the
// port in network order in the upper 16 bits on little-endian hosts (the
// kernel loads skc_dport and shifts it left by 16), so bpf_ntohl(remote_port)
// is the port; local_port holds the port in host order.
const ContextLayout& context_layout(ProgType t);

// The `struct bpf_sock` behind the context's `sk` pointer, read only, as
// bpf_sock_is_valid_access allows it: 4-byte loads of every field; narrow
// (1, 2) loads at the start of state, family, type, protocol, src_port and
// rx_queue_mapping and at any aligned offset of the addresses; dst_port (a
// __be16 plus zero padding) a 4-byte load or 1/2-byte loads of its two bytes.
// sk_skb programs get a PTR_TO_SOCK_COMMON (bpf_sock_common_is_valid_access),
// which refuses type, protocol, mark and priority; sk_msg and sock_ops get the
// whole struct. Byte order: src_port host order, dst_port network order in the
// low 16 bits of a 4-byte load, addresses network order.
const ContextLayout& sock_layout(ProgType t);

}  // namespace sockshim::bpf
