// The policy's vocabulary, once: for each enum a policy names (program types,
// attach types, map types, context fields, key fields, value kinds, actions,
// comparisons, data matchers, frames, families, sock ops, flags) one table
// giving its name and what the loader checks about it. The loader, program.cc,
// test-run and dump take names and properties from here. A table indexed by an
// enum lists every value in enum order (vocabulary.cc asserts it), and its
// order is the order error messages list the names in.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policy/compiled.h"
#include "policy/spec.h"

namespace sockshim::policy {

// A set of program types, one bit per ProgramType.
using ProgramTypes = uint8_t;
constexpr ProgramTypes bit(ProgramType t) noexcept {
  return static_cast<ProgramTypes>(1u << static_cast<unsigned>(t));
}
inline constexpr ProgramTypes kAnyProgram = 0x1f;
// The programs whose return value is a verdict (SK_PASS / SK_DROP).
inline constexpr ProgramTypes kVerdictPrograms =
    bit(ProgramType::sk_msg) | bit(ProgramType::stream_verdict) | bit(ProgramType::skb_verdict);
inline constexpr ProgramTypes kSkbVerdictPrograms =
    bit(ProgramType::stream_verdict) | bit(ProgramType::skb_verdict);

struct ProgramTypeInfo {
  ProgramType type;
  std::string_view name;
};
inline constexpr ProgramTypeInfo kProgramTypes[] = {
    {ProgramType::sk_msg, "sk_msg"},
    {ProgramType::stream_parser, "sk_skb/stream_parser"},
    {ProgramType::stream_verdict, "sk_skb/stream_verdict"},
    {ProgramType::skb_verdict, "sk_skb/verdict"},
    {ProgramType::sockops, "sockops"},
};

struct VerdictInfo {
  Verdict verdict;
  std::string_view name;
};
inline constexpr VerdictInfo kVerdicts[] = {
    {Verdict::pass, "pass"},
    {Verdict::drop, "drop"},
    {Verdict::redirect, "redirect"},
};

struct AttachTypeInfo {
  AttachType type;
  std::string_view name;
  ProgramTypes programs;  // the program types that attach in this role
};
inline constexpr AttachTypeInfo kAttachTypes[] = {
    {AttachType::sk_msg_verdict, "BPF_SK_MSG_VERDICT", bit(ProgramType::sk_msg)},
    {AttachType::sk_skb_stream_parser, "BPF_SK_SKB_STREAM_PARSER", bit(ProgramType::stream_parser)},
    {AttachType::sk_skb_stream_verdict, "BPF_SK_SKB_STREAM_VERDICT", kSkbVerdictPrograms},
    {AttachType::sk_skb_verdict, "BPF_SK_SKB_VERDICT", kSkbVerdictPrograms},
};

struct MapTypeInfo {
  MapType type;
  std::string_view name;
  bool policy = true;  // a policy may name it; array and hash come only from bpf()
};
inline constexpr MapTypeInfo kMapTypes[] = {
    {MapType::sockmap, "sockmap"},       {MapType::sockhash, "sockhash"},
    {MapType::sk_storage, "sk_storage"}, {MapType::array, "array", false},
    {MapType::hash, "hash", false},
};

// How a policy writes a literal for a field, and how dump and test-run print it.
enum class Literal : uint8_t {
  family,  // a name of kFamilies or a number
  op,      // a name of kSockOps or a number
  ip4,     // dotted text
  ip6,     // text
  u16,
  u32,
  u64,
};

struct CtxFieldInfo {
  CtxField field;
  std::string_view name;
  Literal literal;
  ProgramTypes programs;  // whose context has it (sk_msg_md, __sk_buff, bpf_sock_ops)
};
inline constexpr CtxFieldInfo kCtxFieldInfo[] = {
    {CtxField::family, "family", Literal::family, kAnyProgram},
    {CtxField::local_ip4, "local_ip4", Literal::ip4, kAnyProgram},
    {CtxField::remote_ip4, "remote_ip4", Literal::ip4, kAnyProgram},
    {CtxField::local_ip6, "local_ip6", Literal::ip6, kAnyProgram},
    {CtxField::remote_ip6, "remote_ip6", Literal::ip6, kAnyProgram},
    {CtxField::local_port, "local_port", Literal::u16, kAnyProgram},
    {CtxField::remote_port, "remote_port", Literal::u16, kAnyProgram},
    {CtxField::size, "size", Literal::u32, bit(ProgramType::sk_msg)},
    {CtxField::len, "len", Literal::u32, kSkbVerdictPrograms},
    {CtxField::op, "op", Literal::op, bit(ProgramType::sockops)},
};

struct KeyFieldInfo {
  KeyField field;
  std::string_view name;
  uint8_t size;     // bytes in the key
  Literal literal;  // ip4 and ip6 as text, any other as a number
  // The context field the key field takes under "self", and under "peer".
  std::optional<CtxField> self, peer;
};
inline constexpr KeyFieldInfo kKeyFields[] = {
    {KeyField::family, "family", 4, Literal::u32, CtxField::family, CtxField::family},
    {KeyField::local_ip4, "local_ip4", 4, Literal::ip4, CtxField::local_ip4, CtxField::remote_ip4},
    {KeyField::remote_ip4, "remote_ip4", 4, Literal::ip4, CtxField::remote_ip4,
     CtxField::local_ip4},
    {KeyField::local_ip6, "local_ip6", 16, Literal::ip6, CtxField::local_ip6, CtxField::remote_ip6},
    {KeyField::remote_ip6, "remote_ip6", 16, Literal::ip6, CtxField::remote_ip6,
     CtxField::local_ip6},
    {KeyField::local_port, "local_port", 4, Literal::u32, CtxField::local_port,
     CtxField::remote_port},
    {KeyField::remote_port, "remote_port", 4, Literal::u32, CtxField::remote_port,
     CtxField::local_port},
    {KeyField::u32, "u32", 4, Literal::u32, std::nullopt, std::nullopt},
    {KeyField::u64, "u64", 8, Literal::u64, std::nullopt, std::nullopt},
};

// The kinds of an sk_storage value field; "bytes[N]" has the size N it names.
struct ValueKindInfo {
  ValueField::Kind kind;
  std::string_view name;
  uint8_t size;
};
inline constexpr ValueKindInfo kValueKinds[] = {
    {ValueField::Kind::u8, "u8", 1},   {ValueField::Kind::u16, "u16", 2},
    {ValueField::Kind::u32, "u32", 4}, {ValueField::Kind::u64, "u64", 8},
    {ValueField::Kind::i64, "i64", 8}, {ValueField::Kind::bytes, "bytes[N]", 0},
};

// What follows an action's name.
enum class ActionArgs : uint8_t {
  none,     // "pass", "drop": a string, not an object
  count,    // a u32
  range,    // {"start", keys[1], "flags"}
  push,     // {"start", "bytes", "flags"}
  map_key,  // {"map", "key"[, "flags"]}: a sockmap or sockhash entry
  storage,  // {"map", "create", "set", "add"}
  map,      // {"map"}: an sk_storage map
  text,     // a string
};

// The flags of a map_key action.
enum class ActionFlags : uint8_t {
  none,
  redirect,  // BPF_F_INGRESS, names or numbers, one or a list
  update,    // BPF_ANY, BPF_NOEXIST, BPF_EXIST or a number
};

struct ActionInfo {
  Action::Kind kind;
  std::string_view name;
  ProgramTypes programs;  // where it is available
  ActionArgs args;
  std::span<const std::string_view> keys;  // an object's keys
  ActionFlags flags = ActionFlags::none;
  bool needs_data = false;  // reads or changes message bytes
};

namespace action_keys {
inline constexpr std::string_view kMapKeyFlags[] = {"map", "key", "flags"};
inline constexpr std::string_view kMapKey[] = {"map", "key"};
inline constexpr std::string_view kPull[] = {"start", "end", "flags"};
inline constexpr std::string_view kPush[] = {"start", "bytes", "flags"};
inline constexpr std::string_view kPop[] = {"start", "len", "flags"};
inline constexpr std::string_view kStorage[] = {"map", "create", "set", "add"};
inline constexpr std::string_view kMap[] = {"map"};
}  // namespace action_keys

inline constexpr ProgramTypes kSkMsg = bit(ProgramType::sk_msg);
inline constexpr ActionInfo kActions[] = {
    {Action::Kind::pass, "pass", kVerdictPrograms, ActionArgs::none, {}},
    {Action::Kind::drop, "drop", kVerdictPrograms, ActionArgs::none, {}},
    {Action::Kind::redirect, "redirect", kVerdictPrograms, ActionArgs::map_key,
     action_keys::kMapKeyFlags, ActionFlags::redirect},
    {Action::Kind::apply_bytes, "apply_bytes", kSkMsg, ActionArgs::count, {}},
    {Action::Kind::cork_bytes, "cork_bytes", kSkMsg, ActionArgs::count, {}},
    {Action::Kind::pull_data, "pull_data", kSkMsg, ActionArgs::range, action_keys::kPull,
     ActionFlags::none, true},
    {Action::Kind::push_data, "push_data", kSkMsg, ActionArgs::push, action_keys::kPush,
     ActionFlags::none, true},
    {Action::Kind::pop_data, "pop_data", kSkMsg, ActionArgs::range, action_keys::kPop,
     ActionFlags::none, true},
    {Action::Kind::storage, "storage", kAnyProgram, ActionArgs::storage, action_keys::kStorage},
    {Action::Kind::storage_delete, "storage_delete", kAnyProgram, ActionArgs::map,
     action_keys::kMap},
    {Action::Kind::map_update, "map_update", kAnyProgram, ActionArgs::map_key,
     action_keys::kMapKeyFlags, ActionFlags::update},
    {Action::Kind::map_delete, "map_delete", kAnyProgram, ActionArgs::map_key,
     action_keys::kMapKey},
    {Action::Kind::log, "log", kAnyProgram, ActionArgs::text, {}},
};

// How a comparison's operand is written.
enum class CompareArgs : uint8_t {
  one,   // a value
  pair,  // [lo, hi]
  list,  // [v, ...]
};

struct CompareInfo {
  Compare::Op op;
  std::string_view name;
  CompareArgs args;
  std::string_view symbol;  // dump's infix for a one-value comparison
  bool ip6;                 // an IPv6 field compares with it
};
inline constexpr CompareInfo kCompares[] = {
    {Compare::Op::eq, "eq", CompareArgs::one, "=", true},
    {Compare::Op::ne, "ne", CompareArgs::one, "!=", true},
    {Compare::Op::lt, "lt", CompareArgs::one, "<", false},
    {Compare::Op::le, "le", CompareArgs::one, "<=", false},
    {Compare::Op::gt, "gt", CompareArgs::one, ">", false},
    {Compare::Op::ge, "ge", CompareArgs::one, ">=", false},
    {Compare::Op::in, "in", CompareArgs::list, "", true},
    {Compare::Op::range, "range", CompareArgs::pair, "", false},
};

// The matchers of a `data` condition: bytes, or an integer at "at".
struct DataMatcherInfo {
  std::string_view name;
  Cond::Kind kind;
  uint8_t width = 0;  // data_int: bytes
  bool big_endian = true;
};
inline constexpr DataMatcherInfo kDataBytes[] = {
    {"prefix", Cond::Kind::data_prefix},
    {"contains", Cond::Kind::data_contains},
    {"equals", Cond::Kind::data_equals},
};
inline constexpr DataMatcherInfo kDataInts[] = {
    {"u8", Cond::Kind::data_int, 1, true},    {"be16", Cond::Kind::data_int, 2, true},
    {"be32", Cond::Kind::data_int, 4, true},  {"le16", Cond::Kind::data_int, 2, false},
    {"le32", Cond::Kind::data_int, 4, false},
};

struct FrameKindInfo {
  FrameSpec::Kind kind;
  std::string_view name;
};
inline constexpr FrameKindInfo kFrameKinds[] = {
    {FrameSpec::Kind::whole, "whole"},
    {FrameSpec::Kind::length_prefix, "length_prefix"},
    {FrameSpec::Kind::delimiter, "delimiter"},
    {FrameSpec::Kind::fixed, "fixed"},
};

// A name for a number: families, sock ops, flags.
struct NamedValue {
  std::string_view name;
  uint64_t value;
  bool alias = false;  // a second name for a value; not listed by test-run
};
inline constexpr NamedValue kFamilies[] = {
    {"AF_INET", AF_INET}, {"AF_INET6", AF_INET6}, {"AF_UNIX", AF_UNIX}};
constexpr uint64_t op_value(SockOp op) noexcept {
  return static_cast<uint64_t>(op);
}
// In the order messages list them.
inline constexpr NamedValue kSockOps[] = {
    {"active_established", op_value(SockOp::active_established)},
    {"passive_established", op_value(SockOp::passive_established)},
    {"listen", op_value(SockOp::listen)},
    {"state_change", op_value(SockOp::state_change)},
    {"close", op_value(SockOp::state_change), true},
    {"tcp_connect", op_value(SockOp::tcp_connect)},
};
inline constexpr NamedValue kStorageMapFlags[] = {{"BPF_F_NO_PREALLOC", BPF_F_NO_PREALLOC},
                                                  {"BPF_F_CLONE", BPF_F_CLONE}};
inline constexpr NamedValue kRedirectFlags[] = {{"BPF_F_INGRESS", BPF_F_INGRESS}};
inline constexpr NamedValue kUpdateFlags[] = {
    {"BPF_ANY", BPF_ANY}, {"BPF_NOEXIST", BPF_NOEXIST}, {"BPF_EXIST", BPF_EXIST}};

// The entry for an enum value: the tables are in enum order.
constexpr const CtxFieldInfo& info(CtxField f) noexcept {
  return kCtxFieldInfo[static_cast<size_t>(f)];
}
constexpr const KeyFieldInfo& info(KeyField f) noexcept {
  return kKeyFields[static_cast<size_t>(f)];
}
constexpr const ActionInfo& info(Action::Kind k) noexcept {
  return kActions[static_cast<size_t>(k)];
}
constexpr const CompareInfo& info(Compare::Op op) noexcept {
  return kCompares[static_cast<size_t>(op)];
}
constexpr const AttachTypeInfo& info(AttachType t) noexcept {
  return kAttachTypes[static_cast<size_t>(t)];
}

inline constexpr size_t kCtxFields = std::size(kCtxFieldInfo);

// The entry named name, or nullptr.
template <class Info, size_t N>
constexpr const Info* find_name(const Info (&table)[N], std::string_view name) noexcept {
  for (const Info& i : table)
    if (i.name == name) return &i;
  return nullptr;
}

// The first entry whose value is v, or nullptr.
constexpr const NamedValue* find_value(std::span<const NamedValue> names, uint64_t v) noexcept {
  for (const NamedValue& n : names)
    if (n.value == v) return &n;
  return nullptr;
}

// The matcher a data condition (data_prefix ... data_int) was written with.
const DataMatcherInfo& data_matcher(const Cond& c) noexcept;

const char* key_field_name(KeyField f) noexcept;
const char* ctx_field_name(CtxField f) noexcept;
const char* action_name(Action::Kind k) noexcept;

// The names of a table, in its order; with skip, those for which skip is false.
template <class Info, size_t N, class Skip>
std::vector<std::string_view> names_of(const Info (&table)[N], Skip skip) {
  std::vector<std::string_view> out;
  for (const Info& i : table)
    if (!skip(i)) out.push_back(i.name);
  return out;
}
template <class Info, size_t N>
std::vector<std::string_view> names_of(const Info (&table)[N]) {
  return names_of(table, [](const Info&) { return false; });
}

// "\"a\", \"b\"": each name quoted, joined by ", ".
std::string quoted_list(std::span<const std::string_view> names);
// "\"a\", \"b\" or \"c\"".
std::string quoted_or(std::span<const std::string_view> names);

}  // namespace sockshim::policy
