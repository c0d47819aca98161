#include "policy/vocabulary.h"

#include "policy/json_pos.h"
#include "policy/spec.h"

namespace sockshim::policy {
namespace {

// True when table[i] describes the enum value i, for every i, and the table
// ends with last: every value is there, in order.
template <class Info, size_t N, class Get, class Enum>
constexpr bool covers(const Info (&table)[N], Get get, Enum last) {
  for (size_t i = 0; i < N; ++i)
    if (static_cast<size_t>(get(table[i])) != i) return false;
  return N == static_cast<size_t>(last) + 1;
}

static_assert(covers(
    kProgramTypes, [](auto& i) { return i.type; }, ProgramType::sockops));
static_assert(covers(
    kVerdicts, [](auto& i) { return i.verdict; }, Verdict::redirect));
static_assert(covers(
    kAttachTypes, [](auto& i) { return i.type; }, AttachType::sk_skb_verdict));
static_assert(covers(
    kMapTypes, [](auto& i) { return i.type; }, MapType::hash));
static_assert(covers(
    kCtxFieldInfo, [](auto& i) { return i.field; }, CtxField::op));
static_assert(covers(
    kKeyFields, [](auto& i) { return i.field; }, KeyField::u64));
static_assert(covers(
    kValueKinds, [](auto& i) { return i.kind; }, ValueField::Kind::bytes));
static_assert(covers(
    kActions, [](auto& i) { return i.kind; }, Action::Kind::log));
static_assert(covers(
    kCompares, [](auto& i) { return i.op; }, Compare::Op::range));
static_assert(covers(
    kFrameKinds, [](auto& i) { return i.kind; }, FrameSpec::Kind::fixed));

constexpr bool has_op(SockOp op) {
  for (const NamedValue& n : kSockOps)
    if (n.value == op_value(op) && !n.alias) return true;
  return false;
}
static_assert(has_op(SockOp::tcp_connect) && has_op(SockOp::active_established) &&
              has_op(SockOp::passive_established) && has_op(SockOp::state_change) &&
              has_op(SockOp::listen));

// A key field read from the context has the context field's width.
constexpr bool key_fields_fit() {
  for (const KeyFieldInfo& k : kKeyFields)
    for (std::optional<CtxField> f : {k.self, k.peer})
      if (f && (info(*f).literal == Literal::ip6) != (k.size == 16)) return false;
  return true;
}
static_assert(key_fields_fit());

}  // namespace

const char* program_type_name(ProgramType t) noexcept {
  return kProgramTypes[static_cast<size_t>(t)].name.data();
}

const char* verdict_name(Verdict v) noexcept {
  return kVerdicts[static_cast<size_t>(v)].name.data();
}

const char* map_type_name(MapType t) noexcept {
  return kMapTypes[static_cast<size_t>(t)].name.data();
}

const char* attach_type_name(AttachType t) noexcept {
  return info(t).name.data();
}

const char* ctx_field_name(CtxField f) noexcept {
  return info(f).name.data();
}

const char* key_field_name(KeyField f) noexcept {
  return info(f).name.data();
}

uint32_t key_field_size(KeyField f) noexcept {
  return info(f).size;
}

const char* action_name(Action::Kind k) noexcept {
  return info(k).name.data();
}

const DataMatcherInfo& data_matcher(const Cond& c) noexcept {
  for (const DataMatcherInfo& m : kDataBytes)
    if (m.kind == c.kind) return m;
  // u8 has no byte order.
  for (const DataMatcherInfo& m : kDataInts)
    if (m.width == c.width && (m.width == 1 || m.big_endian == c.big_endian)) return m;
  return kDataInts[0];
}

std::string quoted_list(std::span<const std::string_view> names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) out += ", ";
    out += quote(names[i]);
  }
  return out;
}

std::string quoted_or(std::span<const std::string_view> names) {
  if (names.size() < 2) return quoted_list(names);
  return quoted_list(names.first(names.size() - 1)) + " or " + quote(names.back());
}

}  // namespace sockshim::policy
