// The evaluation form of a program: conditions and actions as plain structs the
// loader fills and program.cc walks. Internal to policy/.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "policy/context.h"
#include "policy/spec.h"
#include "policy/stream_parser.h"

namespace sockshim::policy {

// A value a program reads from its context (names and properties: vocabulary.h).
enum class CtxField : uint8_t {
  family,
  local_ip4,
  remote_ip4,
  local_ip6,
  remote_ip6,
  local_port,
  remote_port,
  size,
  len,
  op,
};

// A test on an integer. ip4 fields compare in host order so ranges read naturally.
struct Compare {
  enum class Op : uint8_t { eq, ne, lt, le, gt, ge, in, range };
  Op op = Op::eq;
  bool is_signed = false;  // i64 storage fields
  uint64_t a = 0, b = 0;
  std::vector<uint64_t> set;  // in
};

struct Cond {
  enum class Kind : uint8_t {
    all,
    any,
    not_,
    field,          // field, cmps
    ip6,            // field, ip6_set (any equal), negate
    data_prefix,    // bytes
    data_contains,  // bytes
    data_equals,    // bytes
    data_int,       // at, width, big_endian, cmps
    storage,        // map, value (offset/kind/size), cmps
  };
  Kind kind = Kind::all;
  CtxField field = CtxField::family;
  bool negate = false;
  bool big_endian = true;
  uint8_t width = 1;
  uint32_t at = 0;
  uint32_t map = 0;
  ValueField value;
  std::vector<Compare> cmps;  // all must hold
  std::vector<std::array<uint8_t, 16>> ip6_set;
  std::string bytes;
  std::vector<Cond> children;
};

// One field of a key an action builds: from the context or a literal.
struct KeyPart {
  bool from_ctx = false;
  CtxField field = CtxField::family;
  uint8_t size = 4;                   // 4, 8 or 16 bytes in the key
  std::array<uint8_t, 16> literal{};  // the bytes, as stored in the key
};

struct KeySpec {
  std::vector<KeyPart> parts;
  uint32_t size = 0;
};

inline constexpr uint32_t kMaxKeySize = 512;  // MAX_BPF_STACK: larger keys are E2BIG

struct StorageWrite {
  bool add = false;
  ValueField target;
  bool from_ctx = false;
  CtxField field = CtxField::size;
  uint64_t value = 0;          // integer fields
  std::vector<uint8_t> bytes;  // bytes[N] fields, zero-padded to N
};

struct Action {
  // Names and where each is available: vocabulary.h's kActions.
  enum class Kind : uint8_t {
    pass,
    drop,
    redirect,
    apply_bytes,
    cork_bytes,
    pull_data,
    push_data,
    pop_data,
    storage,
    storage_delete,
    map_update,
    map_delete,
    log,
  };
  Kind kind = Kind::pass;
  uint32_t map = 0;
  KeySpec key;
  uint64_t flags = 0;
  uint32_t a = 0, b = 0;  // N / start,end / start,len
  bool create = false;
  std::vector<uint8_t> bytes;  // push_data fill
  std::vector<StorageWrite> writes;
  std::string text;  // log
};

// The flat form of all rules' `if`s, one array in rule order: integer tests on
// context fields inline (also negated, for `not`, and as an `any` group of the n
// tests that follow), anything else through its Cond, `always` for a rule
// without conditions. A failing test jumps to the next rule's first test; the
// last test of a rule names the rule. Built by Program's constructor, once conds
// no longer move.
struct Test {
  enum class Code : uint8_t { eq, ne, lt, le, gt, ge, in, range, cond, any, always };
  Code code = Code::cond;
  uint8_t field = 0;  // CtxField
  bool negate = false;
  uint32_t n = 0;          // in: set size; any: how many tests follow in the group
  uint32_t on_fail = 0;    // index of the next rule's first test
  int32_t rule_done = -1;  // >= 0: the rule that holds once this test passes
  uint64_t a = 0, b = 0;
  const uint64_t* set = nullptr;
  const Cond* cond = nullptr;
};

static_assert(static_cast<int>(Test::Code::in) == static_cast<int>(Compare::Op::in) &&
                  static_cast<int>(Test::Code::range) == static_cast<int>(Compare::Op::range),
              "Test::Code mirrors Compare::Op");

struct Rule {
  std::vector<Cond> conds;  // all must hold; empty: always
  std::vector<Action> actions;
};

struct CompiledProgram {
  std::vector<Rule> rules;
  std::vector<Test> tests;
  int default_ret = SK_PASS;
  bool needs_data = false;
  bool sticky_drop = true;
  FrameSpec frame;
};

}  // namespace sockshim::policy
