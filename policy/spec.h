// The declarative parts of a policy that core builds objects from: program
// types, verdicts, map definitions and attach types. Shared by the loader
// (policy/) and the emulated kernel objects (core/), so neither depends on the
// other's internals.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace sockshim::policy {

class Program;  // a compiled program; core only compares and runs them

enum class ProgramType : uint8_t {
  sk_msg,          // "sk_msg"
  stream_parser,   // "sk_skb/stream_parser"
  stream_verdict,  // "sk_skb/stream_verdict"
  skb_verdict,     // "sk_skb/verdict"
  sockops,         // "sockops"
};

// What the kernel does with a verdict program's return (sk_psock_map_verd):
// SK_PASS with a redirect target recorded is a redirect, SK_PASS a pass,
// anything else a drop.
enum class Verdict : uint8_t { pass, drop, redirect };

// array and hash are created only through the emulated bpf() (core/bpfsys/);
// a policy cannot name them (MapTypeInfo::policy).
enum class MapType : uint8_t { sockmap, sockhash, sk_storage, array, hash };

// One field of a sockhash key layout. In the key bytes each field is a
// uint32_t (ip4 in network order; ports and family in host order), 16 bytes for
// ip6, or 8 bytes for a u64 literal: the layout of POLICY.md's C API.
enum class KeyField : uint8_t {
  family,
  local_ip4,
  remote_ip4,
  local_ip6,
  remote_ip6,
  local_port,
  remote_port,
  u32,
  u64,
};

uint32_t key_field_size(KeyField f) noexcept;

// One field of an sk_storage value layout, packed in declaration order.
struct ValueField {
  enum class Kind : uint8_t { u8, u16, u32, u64, i64, bytes };
  std::string name;
  Kind kind = Kind::u64;
  uint32_t size = 8;    // bytes; N for bytes[N]
  uint32_t offset = 0;  // from the start of the value
};

// Kernel map flags (include/uapi/linux/bpf.h).
inline constexpr uint32_t BPF_F_NO_PREALLOC = 1u << 0;
inline constexpr uint32_t BPF_F_CLONE = 1u << 9;

// The largest max_entries of a sockmap or sockhash. The kernel's limit is the
// memory for the slot array (a few GiB refused with ENOMEM when the map is
// created); sockshim refuses more than this when the policy is validated, so
// that check refuses what loading would. No map can hold more sockets: the
// shim tracks fds below 1048576 (core/registry.h's kMaxFd, the kernel's
// default nr_open). A full-size sockmap costs 16 MiB.
inline constexpr uint32_t kMaxMapEntries = 1u << 20;

struct MapSpec {
  std::string name;
  MapType type = MapType::sockmap;
  uint32_t max_entries = 0;   // 0 for sk_storage
  uint32_t value_size = 8;    // sockmap/sockhash: 4 or 8; sk_storage: sum of the layout
  std::vector<KeyField> key;  // sockhash only
  uint32_t key_size = 4;      // sockmap 4; sockhash: sum of the key fields; sk_storage 4 (an fd)
  std::vector<ValueField> value;  // sk_storage only
  uint32_t flags = 0;
};

// The kernel's attach types for sockmap/sockhash programs.
enum class AttachType : uint8_t {
  sk_msg_verdict,         // BPF_SK_MSG_VERDICT
  sk_skb_stream_parser,   // BPF_SK_SKB_STREAM_PARSER
  sk_skb_stream_verdict,  // BPF_SK_SKB_STREAM_VERDICT
  sk_skb_verdict,         // BPF_SK_SKB_VERDICT
};

}  // namespace sockshim::policy
