#include "policy/program.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "policy/bytecode.h"
#include "policy/compiled.h"
#include "policy/find_bytes.h"
#include "policy/vocabulary.h"

namespace sockshim::policy {

namespace {

// Everything one run reads and writes. The integer context fields are read
// once, in CtxField order, so tests index them.
struct Run {
  const Program& prog;
  const SocketTuple& sk;
  Helpers& h;
  Tracer* tracer;
  const uint8_t* data = nullptr;
  size_t data_len = 0;
  uint64_t size = 0;
  uint64_t len = 0;
  uint32_t op = 0;
  SkMsg* msg = nullptr;
  uint64_t fields[kCtxFields] = {};

  void load_fields() noexcept {
    fields[static_cast<size_t>(CtxField::family)] = sk.family;
    fields[static_cast<size_t>(CtxField::local_ip4)] = ntohl(sk.local_ip4);
    fields[static_cast<size_t>(CtxField::remote_ip4)] = ntohl(sk.remote_ip4);
    fields[static_cast<size_t>(CtxField::local_port)] = sk.local_port;
    fields[static_cast<size_t>(CtxField::remote_port)] = sk.remote_port;
    fields[static_cast<size_t>(CtxField::size)] = size;
    fields[static_cast<size_t>(CtxField::len)] = len;
    fields[static_cast<size_t>(CtxField::op)] = op;
  }
};

uint64_t field_value(const Run& r, CtxField f) noexcept {
  return r.fields[static_cast<size_t>(f)];
}

const std::array<uint8_t, 16>& ip6_value(const Run& r, CtxField f) noexcept {
  return f == CtxField::local_ip6 ? r.sk.local_ip6 : r.sk.remote_ip6;
}

bool compare(const Compare& c, uint64_t v) noexcept {
  if (c.is_signed) {
    const auto s = static_cast<int64_t>(v), a = static_cast<int64_t>(c.a),
               b = static_cast<int64_t>(c.b);
    switch (c.op) {
      case Compare::Op::lt:
        return s < a;
      case Compare::Op::le:
        return s <= a;
      case Compare::Op::gt:
        return s > a;
      case Compare::Op::ge:
        return s >= a;
      case Compare::Op::range:
        return s >= a && s <= b;
      default:
        break;
    }
  }
  switch (c.op) {
    case Compare::Op::eq:
      return v == c.a;
    case Compare::Op::ne:
      return v != c.a;
    case Compare::Op::lt:
      return v < c.a;
    case Compare::Op::le:
      return v <= c.a;
    case Compare::Op::gt:
      return v > c.a;
    case Compare::Op::ge:
      return v >= c.a;
    case Compare::Op::range:
      return v >= c.a && v <= c.b;
    case Compare::Op::in:
      for (uint64_t x : c.set)
        if (x == v) return true;
      return false;
  }
  return false;
}

bool compare_all(const std::vector<Compare>& cmps, uint64_t v) noexcept {
  for (const Compare& c : cmps)
    if (!compare(c, v)) return false;
  return true;
}

uint64_t read_value_field(const uint8_t* p, const ValueField& f) noexcept {
  switch (f.kind) {
    case ValueField::Kind::u8:
      return p[f.offset];
    case ValueField::Kind::u16: {
      uint16_t v;
      memcpy(&v, p + f.offset, 2);
      return v;
    }
    case ValueField::Kind::u32: {
      uint32_t v;
      memcpy(&v, p + f.offset, 4);
      return v;
    }
    case ValueField::Kind::u64:
    case ValueField::Kind::i64: {
      uint64_t v;
      memcpy(&v, p + f.offset, 8);
      return v;
    }
    case ValueField::Kind::bytes:
      return 0;
  }
  return 0;
}

void write_value_field(uint8_t* p, const ValueField& f, uint64_t v) noexcept {
  switch (f.kind) {
    case ValueField::Kind::u8:
      p[f.offset] = static_cast<uint8_t>(v);
      break;
    case ValueField::Kind::u16: {
      const auto x = static_cast<uint16_t>(v);
      memcpy(p + f.offset, &x, 2);
      break;
    }
    case ValueField::Kind::u32: {
      const auto x = static_cast<uint32_t>(v);
      memcpy(p + f.offset, &x, 4);
      break;
    }
    case ValueField::Kind::u64:
    case ValueField::Kind::i64:
      memcpy(p + f.offset, &v, 8);
      break;
    case ValueField::Kind::bytes:
      break;
  }
}

bool data_int(const Run& r, const Cond& c) noexcept {
  if (uint64_t{c.at} + c.width > r.data_len) return false;
  const uint8_t* p = r.data + c.at;
  uint64_t v = 0;
  for (uint8_t i = 0; i < c.width; ++i) v = (v << 8) | p[c.big_endian ? i : c.width - 1 - i];
  return compare_all(c.cmps, v);
}

bool eval(const Run& r, const Cond& c) noexcept;

bool eval_all(const Run& r, const std::vector<Cond>& conds) noexcept {
  for (const Cond& c : conds)
    if (!eval(r, c)) return false;
  return true;
}

[[gnu::always_inline]] inline bool simple_test(const Run& r, const Test& t) noexcept {
  const uint64_t v = r.fields[t.field];
  bool ok;
  switch (t.code) {
    case Test::Code::eq:
      ok = v == t.a;
      break;
    case Test::Code::ne:
      ok = v != t.a;
      break;
    case Test::Code::lt:
      ok = v < t.a;
      break;
    case Test::Code::le:
      ok = v <= t.a;
      break;
    case Test::Code::gt:
      ok = v > t.a;
      break;
    case Test::Code::ge:
      ok = v >= t.a;
      break;
    case Test::Code::range:
      ok = v >= t.a && v <= t.b;
      break;
    case Test::Code::in:
      ok = false;
      for (uint32_t i = 0; i < t.n && !ok; ++i) ok = t.set[i] == v;
      break;
    default:
      ok = false;
      break;
  }
  return ok != t.negate;
}

// The index of the first rule whose conditions hold, or -1.
int32_t match_rule(const Run& r, const CompiledProgram& c) noexcept {
  const Test* base = c.tests.data();
  const Test* end = base + c.tests.size();
  const Test* t = base;
  while (t < end) {
    bool ok;
    const Test* next = t + 1;
    const uint64_t v = r.fields[t->field];
    // One dispatch for the common tests; simple_test only inside `any` groups.
    switch (t->code) {
      case Test::Code::eq:
        ok = (v == t->a) != t->negate;
        break;
      case Test::Code::ne:
        ok = (v != t->a) != t->negate;
        break;
      case Test::Code::lt:
        ok = (v < t->a) != t->negate;
        break;
      case Test::Code::le:
        ok = (v <= t->a) != t->negate;
        break;
      case Test::Code::gt:
        ok = (v > t->a) != t->negate;
        break;
      case Test::Code::ge:
        ok = (v >= t->a) != t->negate;
        break;
      case Test::Code::range:
        ok = (v >= t->a && v <= t->b) != t->negate;
        break;
      case Test::Code::in:
        ok = simple_test(r, *t);
        break;
      case Test::Code::any:
        ok = false;
        for (uint32_t i = 1; i <= t->n && !ok; ++i) ok = simple_test(r, t[i]);
        next = t + 1 + t->n;
        break;
      case Test::Code::cond:
        ok = eval(r, *t->cond);
        break;
      default:  // always
        ok = true;
        break;
    }
    if (!ok) {
      t = base + t->on_fail;
      continue;
    }
    if (t->rule_done >= 0) return t->rule_done;
    t = next;
  }
  return -1;
}

// A field condition with one comparison, as a Test.
bool simple_field(const Cond& c) {
  return c.kind == Cond::Kind::field && c.cmps.size() == 1;
}

Test field_test(const Cond& c, const Compare& cmp, bool negate) {
  Test t;
  t.code = static_cast<Test::Code>(cmp.op);
  t.field = static_cast<uint8_t>(c.field);
  t.negate = negate;
  t.a = cmp.a;
  t.b = cmp.b;
  t.set = cmp.set.data();
  t.n = static_cast<uint32_t>(cmp.set.size());
  return t;
}

// Flattens every rule's conds into c.tests (see Test).
void build_tests(CompiledProgram& c) {
  c.tests.clear();
  for (size_t ri = 0; ri < c.rules.size(); ++ri) {
    const size_t first = c.tests.size();
    size_t last_head = first;
    auto head = [&](Test t) {
      last_head = c.tests.size();
      c.tests.push_back(t);
    };
    for (const Cond& cond : c.rules[ri].conds) {
      if (cond.kind == Cond::Kind::field) {
        for (const Compare& cmp : cond.cmps) head(field_test(cond, cmp, false));
      } else if (cond.kind == Cond::Kind::not_ && cond.children.size() == 1 &&
                 simple_field(cond.children[0])) {
        head(field_test(cond.children[0], cond.children[0].cmps[0], true));
      } else if (cond.kind == Cond::Kind::any && !cond.children.empty() &&
                 std::all_of(cond.children.begin(), cond.children.end(), simple_field)) {
        Test group;
        group.code = Test::Code::any;
        group.n = static_cast<uint32_t>(cond.children.size());
        head(group);
        for (const Cond& x : cond.children) c.tests.push_back(field_test(x, x.cmps[0], false));
      } else {
        Test t;
        t.cond = &cond;
        head(t);
      }
    }
    if (c.tests.size() == first) {
      Test t;
      t.code = Test::Code::always;
      head(t);
    }
    c.tests[last_head].rule_done = static_cast<int32_t>(ri);
    const auto next_rule = static_cast<uint32_t>(c.tests.size());
    for (size_t i = first; i < c.tests.size(); ++i) c.tests[i].on_fail = next_rule;
  }
}

// The data and storage tests live out of line so that eval, which the nested
// all/any/not conditions call, stays a small function.
[[gnu::noinline]] bool eval_data(const Run& r, const Cond& c) noexcept {
  // An empty message may have no buffer at all: never pass a null pointer on.
  const auto* b = reinterpret_cast<const uint8_t*>(c.bytes.data());
  switch (c.kind) {
    case Cond::Kind::data_prefix:
      return c.bytes.empty() ||
             (r.data_len >= c.bytes.size() && memcmp(r.data, b, c.bytes.size()) == 0);
    case Cond::Kind::data_contains:
      return find_bytes(r.data, r.data_len, b, c.bytes.size()) != nullptr;
    case Cond::Kind::data_equals:
      return r.data_len == c.bytes.size() &&
             (c.bytes.empty() || memcmp(r.data, b, c.bytes.size()) == 0);
    case Cond::Kind::data_int:
      return data_int(r, c);
    default:
      return false;
  }
}

[[gnu::noinline]] bool eval_storage(const Run& r, const Cond& c) noexcept {
  const uint8_t* p = r.h.storage_get(c.map, false);
  return p && compare_all(c.cmps, read_value_field(p, c.value));
}

[[gnu::noinline]] bool eval_ip6(const Run& r, const Cond& c) noexcept {
  const auto& v = ip6_value(r, c.field);
  bool hit = false;
  for (const auto& x : c.ip6_set) hit = hit || x == v;
  return hit != c.negate;
}

bool eval(const Run& r, const Cond& c) noexcept {
  switch (c.kind) {
    case Cond::Kind::all:
      return eval_all(r, c.children);
    case Cond::Kind::any:
      for (const Cond& x : c.children)
        if (eval(r, x)) return true;
      return false;
    case Cond::Kind::not_:
      return !eval_all(r, c.children);
    case Cond::Kind::field:
      if (c.cmps.size() == 1) return compare(c.cmps[0], field_value(r, c.field));
      return compare_all(c.cmps, field_value(r, c.field));
    case Cond::Kind::ip6:
      return eval_ip6(r, c);
    case Cond::Kind::storage:
      return eval_storage(r, c);
    default:
      return eval_data(r, c);
  }
}

// Builds a key in the map's layout (see KeyField in spec.h) into buf.
std::span<const uint8_t> build_key(const Run& r, const KeySpec& k, uint8_t* buf) noexcept {
  uint8_t* p = buf;
  for (const KeyPart& part : k.parts) {
    if (!part.from_ctx) {
      memcpy(p, part.literal.data(), part.size);
    } else if (part.field == CtxField::local_ip6 || part.field == CtxField::remote_ip6) {
      memcpy(p, ip6_value(r, part.field).data(), 16);
    } else {
      uint64_t v = field_value(r, part.field);
      if (part.field == CtxField::local_ip4 || part.field == CtxField::remote_ip4)
        v = part.field == CtxField::local_ip4 ? r.sk.local_ip4 : r.sk.remote_ip4;
      if (part.size == 4) {
        const auto x = static_cast<uint32_t>(v);
        memcpy(p, &x, 4);
      } else {
        memcpy(p, &v, 8);
      }
    }
    p += part.size;
  }
  return {buf, k.size};
}

long run_storage(const Run& r, const Action& a) noexcept {
  uint8_t* p = r.h.storage_get(a.map, a.create);
  if (!p) return -ENOENT;
  for (const StorageWrite& w : a.writes) {
    if (w.target.kind == ValueField::Kind::bytes) {
      memcpy(p + w.target.offset, w.bytes.data(), w.target.size);
      continue;
    }
    const uint64_t v = w.from_ctx ? field_value(r, w.field) : w.value;
    write_value_field(p, w.target, w.add ? read_value_field(p, w.target) + v : v);
  }
  return 0;
}

// Runs one action; returns the helper's result. ret/redirected carry the
// program's return value as a verdict action sets it.
long run_action(const Run& r, const Action& a, int& ret, bool& redirected) {
  uint8_t key[kMaxKeySize];
  switch (a.kind) {
    case Action::Kind::pass:
      return ret = SK_PASS;
    case Action::Kind::drop:
      return ret = SK_DROP;
    case Action::Kind::redirect: {
      // The helpers return SK_DROP for a flag other than BPF_F_INGRESS.
      if (a.flags & ~BPF_F_INGRESS) return ret = SK_DROP;
      ret = r.h.redirect(a.map, build_key(r, a.key, key), a.flags);
      if (ret == SK_PASS) redirected = true;
      return ret;
    }
    case Action::Kind::apply_bytes:
      return r.msg->apply_bytes(a.a);
    case Action::Kind::cork_bytes:
      return r.msg->cork_bytes(a.a);
    case Action::Kind::pull_data:
      return r.msg->pull_data(a.a, a.b, a.flags);
    case Action::Kind::push_data:
      return r.msg->push_data(a.a, static_cast<uint32_t>(a.bytes.size()), a.flags, a.bytes);
    case Action::Kind::pop_data:
      return r.msg->pop_data(a.a, a.b, a.flags);
    case Action::Kind::storage:
      return run_storage(r, a);
    case Action::Kind::storage_delete:
      return r.h.storage_delete(a.map);
    case Action::Kind::map_update:
      if (r.prog.type() == ProgramType::sockops && !sock_map_op_okay(static_cast<SockOp>(r.op)))
        return -EOPNOTSUPP;
      return r.h.map_update(a.map, build_key(r, a.key, key), a.flags);
    case Action::Kind::map_delete:
      return r.h.map_delete(a.map, build_key(r, a.key, key));
    case Action::Kind::log:
      r.h.log(r.prog, a.text);
      return 0;
  }
  return 0;
}

RunResult run_rules(const Run& r, const CompiledProgram& c) {
  RunResult res;
  res.ret = c.default_ret;
  const int32_t matched = match_rule(r, c);
  if (matched >= 0) {
    const auto i = static_cast<size_t>(matched);
    const Rule& rule = c.rules[i];
    res.rule = static_cast<int32_t>(i);
    bool redirected = false;
    for (size_t j = 0; j < rule.actions.size(); ++j) {
      const long ret = run_action(r, rule.actions[j], res.ret, redirected);
      if (r.tracer) r.tracer->action(i, j, action_name(rule.actions[j].kind), ret);
    }
    res.verdict = res.ret != SK_PASS ? Verdict::drop
                  : redirected       ? Verdict::redirect
                                     : Verdict::pass;
    return res;
  }
  res.verdict = res.ret == SK_PASS ? Verdict::pass : Verdict::drop;
  return res;
}

}  // namespace

Program::Program(std::string name, ProgramType type, std::unique_ptr<CompiledProgram> compiled)
    : name_(std::move(name)), type_(type), compiled_(std::move(compiled)) {
  build_tests(*compiled_);
}

Program::Program(std::string name, ProgramType type, std::unique_ptr<Bytecode> bytecode)
    : name_(std::move(name)),
      type_(type),
      compiled_(std::make_unique<CompiledProgram>()),
      bytecode_(std::move(bytecode)) {
  compiled_->default_ret = SK_DROP;
}

Program::~Program() = default;

uint64_t Program::faults() const noexcept {
  return bytecode_ ? bytecode_->faults.load(std::memory_order_relaxed) : 0;
}

bool Program::needs_data() const noexcept {
  return bytecode_ || compiled_->needs_data;
}
size_t Program::rule_count() const noexcept {
  return compiled_->rules.size();
}
bool Program::sticky_drop() const noexcept {
  return compiled_->sticky_drop;
}
int Program::default_ret() const noexcept {
  return compiled_->default_ret;
}
const FrameSpec& Program::frame() const noexcept {
  return compiled_->frame;
}

RunResult Program::run_msg(SkMsg& msg, const SocketTuple& sk, Helpers& helpers,
                           Tracer* tracer) const {
  if (bytecode_) return bytecode_run_msg(*this, *bytecode_, msg, sk, helpers, tracer);
  Run r{*this, sk, helpers, tracer};
  const auto window = msg.data();
  r.data = window.data();
  r.data_len = window.size();
  r.size = msg.size();
  r.msg = &msg;
  r.load_fields();
  return run_rules(r, *compiled_);
}

RunResult Program::run_skb(std::span<uint8_t> frame, const SocketTuple& sk, Helpers& helpers,
                           Tracer* tracer) const {
  if (bytecode_) return bytecode_run_skb(*this, *bytecode_, frame, true, sk, helpers, tracer);
  return run_skb(std::span<const uint8_t>(frame), sk, helpers, tracer);
}

RunResult Program::run_skb(std::span<const uint8_t> frame, const SocketTuple& sk, Helpers& helpers,
                           Tracer* tracer) const {
  if (bytecode_) return bytecode_run_skb(*this, *bytecode_, frame, false, sk, helpers, tracer);
  Run r{*this, sk, helpers, tracer};
  r.data = frame.data();
  r.data_len = frame.size();
  r.len = frame.size();
  r.load_fields();
  return run_rules(r, *compiled_);
}

RunResult Program::run_sockops(SockOp op, const SocketTuple& sk, Helpers& helpers,
                               Tracer* tracer) const {
  if (bytecode_) return bytecode_run_sockops(*this, *bytecode_, op, sk, helpers, tracer);
  Run r{*this, sk, helpers, tracer};
  r.op = static_cast<uint32_t>(op);
  r.load_fields();
  RunResult res = run_rules(r, *compiled_);
  res.ret = 1;
  res.verdict = Verdict::pass;
  return res;
}

int64_t Program::parse(std::span<const uint8_t> buf, const SocketTuple* sk,
                       Helpers* helpers) const noexcept {
  if (bytecode_) return bytecode_parse(*this, *bytecode_, buf, sk, helpers);
  return parse_frame(compiled_->frame, buf);
}

}  // namespace sockshim::policy
