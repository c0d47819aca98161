// POLICY.md v1 -> Policy. One pass over the document validates and compiles;
// every problem is recorded and the walk goes on, so a user sees all of them.
#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "policy/compiled.h"
#include "policy/json_pos.h"
#include "policy/policy.h"

namespace sockshim::policy {

using json = nlohmann::ordered_json;

namespace {

std::string one_of(std::initializer_list<std::string_view> names) {
  std::string out = "expected one of ";
  bool first = true;
  for (std::string_view n : names) {
    if (!first) out += ", ";
    out += quote(n);
    first = false;
  }
  return out;
}

std::string join_quoted(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) out += ", ";
    out += quote(names[i]);
  }
  return out;
}

struct FieldInfo {
  const char* name;
  CtxField field;
};

constexpr FieldInfo kFields[] = {
    {"family", CtxField::family},
    {"local_ip4", CtxField::local_ip4},
    {"remote_ip4", CtxField::remote_ip4},
    {"local_ip6", CtxField::local_ip6},
    {"remote_ip6", CtxField::remote_ip6},
    {"local_port", CtxField::local_port},
    {"remote_port", CtxField::remote_port},
    {"size", CtxField::size},
    {"len", CtxField::len},
    {"op", CtxField::op},
};

std::optional<CtxField> ctx_field(std::string_view name) {
  for (const FieldInfo& f : kFields)
    if (name == f.name) return f.field;
  return std::nullopt;
}

bool is_ip6(CtxField f) {
  return f == CtxField::local_ip6 || f == CtxField::remote_ip6;
}

// Which context fields each program type has (sk_msg_md, __sk_buff, bpf_sock_ops).
bool field_available(CtxField f, ProgramType t) {
  switch (f) {
    case CtxField::size:
      return t == ProgramType::sk_msg;
    case CtxField::len:
      return t == ProgramType::stream_verdict || t == ProgramType::skb_verdict;
    case CtxField::op:
      return t == ProgramType::sockops;
    default:
      return true;
  }
}

struct NamedValue {
  const char* name;
  uint64_t value;
};

constexpr NamedValue kFamilies[] = {
    {"AF_INET", AF_INET}, {"AF_INET6", AF_INET6}, {"AF_UNIX", AF_UNIX}};
constexpr NamedValue kOps[] = {
    {"tcp_connect", 3},
    {"active_established", 4},
    {"passive_established", 5},
    {"state_change", 10},
    {"close", 10},
    {"listen", 11},
};

struct KeyFieldInfo {
  const char* name;
  KeyField field;
};

constexpr KeyFieldInfo kKeyFields[] = {
    {"family", KeyField::family},
    {"local_ip4", KeyField::local_ip4},
    {"remote_ip4", KeyField::remote_ip4},
    {"local_ip6", KeyField::local_ip6},
    {"remote_ip6", KeyField::remote_ip6},
    {"local_port", KeyField::local_port},
    {"remote_port", KeyField::remote_port},
    {"u32", KeyField::u32},
    {"u64", KeyField::u64},
};

const char* key_field_name(KeyField f) {
  for (const KeyFieldInfo& k : kKeyFields)
    if (k.field == f) return k.name;
  return "?";
}

// The context field a key field takes its value from under "self", and under "peer".
std::optional<CtxField> key_self(KeyField f, bool peer) {
  switch (f) {
    case KeyField::family:
      return CtxField::family;
    case KeyField::local_ip4:
      return peer ? CtxField::remote_ip4 : CtxField::local_ip4;
    case KeyField::remote_ip4:
      return peer ? CtxField::local_ip4 : CtxField::remote_ip4;
    case KeyField::local_ip6:
      return peer ? CtxField::remote_ip6 : CtxField::local_ip6;
    case KeyField::remote_ip6:
      return peer ? CtxField::local_ip6 : CtxField::remote_ip6;
    case KeyField::local_port:
      return peer ? CtxField::remote_port : CtxField::local_port;
    case KeyField::remote_port:
      return peer ? CtxField::local_port : CtxField::remote_port;
    default:
      return std::nullopt;
  }
}

const char* type_word(const json& v) {
  switch (v.type()) {
    case json::value_t::object:
      return "an object";
    case json::value_t::array:
      return "an array";
    case json::value_t::string:
      return "a string";
    case json::value_t::boolean:
      return "a boolean";
    case json::value_t::null:
      return "null";
    default:
      return "a number";
  }
}

class Loader {
 public:
  Loader(const JsonDoc& doc, std::vector<LoadError>& errors) : doc_(doc), errors_(errors) {}

  std::unique_ptr<Policy> load();

 private:
  // ---- errors and typed reads ----
  void error_at(uint32_t offset, const std::string& ptr, std::string message) {
    const LineCol lc = doc_.line_col(offset);
    errors_.push_back({ptr, lc.line, lc.column, std::move(message)});
  }
  void error(const std::string& ptr, std::string message) {
    error_at(doc_.pos(ptr).value, ptr, std::move(message));
  }
  void error_key(const std::string& ptr, std::string message) {
    error_at(doc_.pos(ptr).key, ptr, std::move(message));
  }

  static std::string at(const std::string& ptr, std::string_view token) {
    return json_pointer_append(ptr, token);
  }

  bool expect_object(const json& v, const std::string& ptr) {
    if (v.is_object()) return true;
    error(ptr, std::string("expected an object, found ") + type_word(v));
    return false;
  }
  bool expect_array(const json& v, const std::string& ptr) {
    if (v.is_array()) return true;
    error(ptr, std::string("expected an array, found ") + type_word(v));
    return false;
  }
  std::optional<std::string> get_string(const json& v, const std::string& ptr) {
    if (v.is_string()) return v.get<std::string>();
    error(ptr, std::string("expected a string, found ") + type_word(v));
    return std::nullopt;
  }
  // An unsigned integer in [lo, hi].
  std::optional<uint64_t> get_uint(const json& v, const std::string& ptr, uint64_t lo = 0,
                                   uint64_t hi = UINT64_MAX) {
    if (v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0)) {
      const uint64_t x = v.get<uint64_t>();
      if (x >= lo && x <= hi) return x;
    }
    if (hi == UINT64_MAX && lo == 0)
      error(ptr, "expected a non-negative integer");
    else
      error(ptr, "expected an integer from " + std::to_string(lo) + " to " + std::to_string(hi));
    return std::nullopt;
  }
  std::optional<int64_t> get_int(const json& v, const std::string& ptr) {
    if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
    if (v.is_number_unsigned() && v.get<uint64_t>() <= INT64_MAX)
      return static_cast<int64_t>(v.get<uint64_t>());
    error(ptr, "expected an integer");
    return std::nullopt;
  }
  // A signed or unsigned 64-bit integer, as its bits.
  std::optional<uint64_t> get_int_bits(const json& v, const std::string& ptr) {
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (v.is_number_integer()) return static_cast<uint64_t>(v.get<int64_t>());
    error(ptr, "expected an integer");
    return std::nullopt;
  }
  std::optional<std::string> get_enum(const json& v, const std::string& ptr,
                                      std::initializer_list<std::string_view> names) {
    if (v.is_string()) {
      const std::string s = v.get<std::string>();
      for (std::string_view n : names)
        if (s == n) return s;
    }
    error(ptr, one_of(names));
    return std::nullopt;
  }
  // Reports keys of obj that are not in allowed; "description" is always allowed.
  bool check_keys(const json& obj, const std::string& ptr,
                  std::initializer_list<std::string_view> allowed) {
    bool ok = true;
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      if (it.key() == "description") continue;
      if (std::find(allowed.begin(), allowed.end(), it.key()) != allowed.end()) continue;
      error_key(at(ptr, it.key()), "unknown key " + quote(it.key()) + " (" + one_of(allowed) + ")");
      ok = false;
    }
    return ok;
  }
  bool require(const json& obj, const std::string& ptr, std::string_view key) {
    if (obj.contains(key)) return true;
    error(ptr, "missing required key " + quote(key));
    return false;
  }
  const json* member(const json& obj, std::string_view key) {
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }

  // Text or {"hex": "..."} as bytes.
  std::optional<std::string> get_bytes(const json& v, const std::string& ptr);

  // ---- sections ----
  void load_maps(const json& v, const std::string& ptr);
  void load_map(const std::string& name, const json& v, const std::string& ptr);
  void load_programs(const json& v, const std::string& ptr);
  void load_program(const std::string& name, const json& v, const std::string& ptr);
  void load_frame(const json& v, const std::string& ptr, FrameSpec& out);
  void load_rules(const json& v, const std::string& ptr, CompiledProgram& out);
  bool load_cond_object(const json& v, const std::string& ptr, std::vector<Cond>& out);
  bool load_cond(const std::string& key, const json& v, const std::string& ptr,
                 std::vector<Cond>& out);
  bool load_field_cond(CtxField f, const json& v, const std::string& ptr, Cond& out);
  bool load_comparisons(
      const json& v, const std::string& ptr, bool object_only,
      const std::function<std::optional<uint64_t>(const json&, const std::string&)>& value,
      std::vector<Compare>& out, bool is_signed = false);
  bool load_data_cond(const json& v, const std::string& ptr, std::vector<Cond>& out);
  bool load_storage_cond(const json& v, const std::string& ptr, Cond& out);
  std::optional<uint64_t> field_literal(CtxField f, const json& v, const std::string& ptr);
  bool load_action(const json& v, const std::string& ptr, Action& out);
  bool load_action_body(const std::string& kind, const json& v, const std::string& ptr,
                        Action& out);
  std::optional<uint32_t> map_ref(const json& obj, const std::string& ptr,
                                  std::initializer_list<MapType> types);
  bool load_key(const json& v, const std::string& ptr, uint32_t map, KeySpec& out);
  bool load_key_part(KeyField kf, const json& v, const std::string& ptr, KeyPart& out);
  const ValueField* storage_field(uint32_t map, const json& v, const std::string& ptr);
  void load_attach(const json& v, const std::string& ptr);
  void load_sockops(const json& v, const std::string& ptr);

  const JsonDoc& doc_;
  std::vector<LoadError>& errors_;
  std::unique_ptr<Policy> policy_ = std::make_unique<Policy>();
  // Maps whose definition had errors: references to them are not checked further.
  std::set<std::string> broken_maps_;
  std::map<std::string, ProgramType> program_types_;
  std::set<std::string> broken_programs_;
  ProgramType cur_type_ = ProgramType::sk_msg;  // of the program being loaded
  bool needs_data_ = false;
};

std::optional<std::string> Loader::get_bytes(const json& v, const std::string& ptr) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object()) {
    check_keys(v, ptr, {"hex"});
    if (!require(v, ptr, "hex")) return std::nullopt;
    const std::string p = at(ptr, "hex");
    auto hex = get_string(v["hex"], p);
    if (!hex) return std::nullopt;
    std::string out;
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    if (hex->size() % 2 != 0) {
      error(p, "expected an even number of hex digits");
      return std::nullopt;
    }
    for (size_t i = 0; i < hex->size(); i += 2) {
      const int hi = nibble((*hex)[i]), lo = nibble((*hex)[i + 1]);
      if (hi < 0 || lo < 0) {
        error(p, "expected hex digits (0-9, a-f)");
        return std::nullopt;
      }
      out += static_cast<char>(hi * 16 + lo);
    }
    return out;
  }
  error(ptr, "expected a string or {\"hex\": \"...\"}");
  return std::nullopt;
}

std::unique_ptr<Policy> Loader::load() {
  const json& root = doc_.value();
  if (!expect_object(root, "")) return nullptr;
  check_keys(root, "", {"version", "maps", "programs", "attach", "sockops"});
  if (require(root, "", "version")) {
    const json& v = root["version"];
    if (!(v.is_number_integer() && v.get<int64_t>() == 1))
      error("/version", "expected 1 (the only policy version)");
  }
  if (const json* d = member(root, "description")) {
    if (auto s = get_string(*d, "/description")) policy_->description = *s;
  }
  if (const json* m = member(root, "maps")) load_maps(*m, "/maps");
  if (const json* p = member(root, "programs")) load_programs(*p, "/programs");
  if (const json* a = member(root, "attach")) load_attach(*a, "/attach");
  if (const json* s = member(root, "sockops")) load_sockops(*s, "/sockops");
  return std::move(policy_);
}

// ---- maps ----

void Loader::load_maps(const json& v, const std::string& ptr) {
  if (!expect_object(v, ptr)) return;
  for (auto it = v.begin(); it != v.end(); ++it) load_map(it.key(), it.value(), at(ptr, it.key()));
}

void Loader::load_map(const std::string& name, const json& v, const std::string& ptr) {
  const size_t errors_before = errors_.size();
  MapSpec spec;
  spec.name = name;
  if (name.empty()) error_key(ptr, "a map name must not be empty");
  if (!expect_object(v, ptr)) {
    broken_maps_.insert(name);
    return;
  }
  check_keys(v, ptr, {"type", "max_entries", "key", "value_size", "value", "flags"});
  std::optional<std::string> type;
  if (require(v, ptr, "type"))
    type = get_enum(v["type"], at(ptr, "type"), {"sockmap", "sockhash", "sk_storage"});
  if (!type) {
    broken_maps_.insert(name);
    return;
  }
  const auto not_for = [&](std::string_view key, std::string why) {
    if (v.contains(key))
      error_key(at(ptr, key), quote(key) + " is not allowed for a " + *type + why);
  };
  if (*type == "sk_storage") {
    spec.type = MapType::sk_storage;
    spec.key_size = 4;
    if (const json* me = member(v, "max_entries")) {
      if (!(me->is_number_integer() && me->get<int64_t>() == 0))
        error(at(ptr, "max_entries"), "must be 0 or absent for sk_storage (EINVAL)");
    }
    not_for("key", " (its key is the socket)");
    not_for("value_size", " (the value layout sets it)");
    if (require(v, ptr, "flags")) {
      const std::string fp = at(ptr, "flags");
      const json& f = v["flags"];
      if (expect_array(f, fp)) {
        for (size_t i = 0; i < f.size(); ++i) {
          auto n = get_enum(f[i], at(fp, std::to_string(i)), {"BPF_F_NO_PREALLOC", "BPF_F_CLONE"});
          if (n) spec.flags |= *n == "BPF_F_NO_PREALLOC" ? BPF_F_NO_PREALLOC : BPF_F_CLONE;
        }
        if (errors_.size() == errors_before && !(spec.flags & BPF_F_NO_PREALLOC))
          error(fp, "must contain \"BPF_F_NO_PREALLOC\" (EINVAL)");
      }
    }
    if (require(v, ptr, "value")) {
      const std::string vp = at(ptr, "value");
      const json& val = v["value"];
      if (expect_object(val, vp)) {
        uint32_t offset = 0;
        for (auto it = val.begin(); it != val.end(); ++it) {
          const std::string fp = at(vp, it.key());
          auto s = get_string(it.value(), fp);
          if (!s) continue;
          ValueField f;
          f.name = it.key();
          f.offset = offset;
          static const std::pair<const char*, ValueField::Kind> kKinds[] = {
              {"u8", ValueField::Kind::u8},
              {"u16", ValueField::Kind::u16},
              {"u32", ValueField::Kind::u32},
              {"u64", ValueField::Kind::u64},
              {"i64", ValueField::Kind::i64}};
          bool known = false;
          for (const auto& [kname, kind] : kKinds)
            if (*s == kname) {
              f.kind = kind;
              f.size = kind == ValueField::Kind::u8    ? 1
                       : kind == ValueField::Kind::u16 ? 2
                       : kind == ValueField::Kind::u32 ? 4
                                                       : 8;
              known = true;
            }
          unsigned long n = 0;
          int used = 0;
          if (!known && sscanf(s->c_str(), "bytes[%lu]%n", &n, &used) == 1 &&
              static_cast<size_t>(used) == s->size() && n > 0 && n <= 65535 &&
              s->find_first_of("+- ") == std::string::npos) {
            f.kind = ValueField::Kind::bytes;
            f.size = static_cast<uint32_t>(n);
            known = true;
          }
          if (!known) {
            error(fp,
                  "expected \"u8\", \"u16\", \"u32\", \"u64\", \"i64\" or \"bytes[N]\" (N from 1 "
                  "to 65535)");
            continue;
          }
          offset += f.size;
          spec.value.push_back(std::move(f));
        }
        spec.value_size = offset;
        if (val.empty()) error(vp, "expected at least one field (value_size 0 is EINVAL)");
        // BPF_LOCAL_STORAGE_MAX_VALUE_SIZE is a little under U16_MAX.
        if (offset > 65535 - 16)
          error(vp, "value is " + std::to_string(offset) + " bytes: more than 65519 (E2BIG)");
      }
    }
  } else {
    spec.type = *type == "sockmap" ? MapType::sockmap : MapType::sockhash;
    if (require(v, ptr, "max_entries")) {
      const std::string mp = at(ptr, "max_entries");
      const json& me = v["max_entries"];
      if (me.is_number_integer() && me.get<int64_t>() == 0 && !me.is_number_unsigned())
        error(mp, "must be greater than 0 (EINVAL)");
      else if (me.is_number_unsigned() && me.get<uint64_t>() == 0)
        error(mp, "must be greater than 0 (EINVAL)");
      else if (auto n = get_uint(me, mp, 1, UINT32_MAX); n && *n > kMaxMapEntries)
        error(mp, std::to_string(*n) + " is more than " + std::to_string(kMaxMapEntries) +
                      ", the most entries a map may have (no process has more sockets)");
      else if (n)
        spec.max_entries = static_cast<uint32_t>(*n);
    }
    if (const json* vs = member(v, "value_size")) {
      if (vs->is_number_integer() && (vs->get<int64_t>() == 4 || vs->get<int64_t>() == 8))
        spec.value_size = static_cast<uint32_t>(vs->get<int64_t>());
      else
        error(at(ptr, "value_size"), "expected 4 or 8 (EINVAL)");
    }
    not_for("value", " (its value is a socket)");
    not_for("flags", "");
    if (spec.type == MapType::sockmap) {
      not_for("key", " (its key is a u32 index)");
      spec.key_size = 4;
    } else if (require(v, ptr, "key")) {
      const std::string kp = at(ptr, "key");
      const json& k = v["key"];
      if (expect_array(k, kp)) {
        if (k.empty()) error(kp, "expected at least one key field (key_size 0 is EINVAL)");
        uint32_t size = 0;
        for (size_t i = 0; i < k.size(); ++i) {
          const std::string ip = at(kp, std::to_string(i));
          bool found = false;
          if (k[i].is_string())
            for (const KeyFieldInfo& info : kKeyFields)
              if (k[i].get<std::string>() == info.name) {
                spec.key.push_back(info.field);
                size += key_field_size(info.field);
                found = true;
              }
          if (!found)
            error(ip, one_of({"family", "local_ip4", "remote_ip4", "local_ip6", "remote_ip6",
                              "local_port", "remote_port", "u32", "u64"}));
        }
        spec.key_size = size;
        if (size > kMaxKeySize)
          error(kp, "key is " + std::to_string(size) + " bytes: more than 512 (E2BIG)");
      }
    }
  }
  if (errors_.size() != errors_before) broken_maps_.insert(name);
  policy_->maps.push_back(std::move(spec));
}

// ---- programs ----

void Loader::load_programs(const json& v, const std::string& ptr) {
  if (!expect_object(v, ptr)) return;
  // Types first, so that references between programs (attach, sockops) and
  // the order of definitions do not matter.
  for (auto it = v.begin(); it != v.end(); ++it)
    load_program(it.key(), it.value(), at(ptr, it.key()));
}

void Loader::load_program(const std::string& name, const json& v, const std::string& ptr) {
  const size_t errors_before = errors_.size();
  if (name.empty()) error_key(ptr, "a program name must not be empty");
  if (!expect_object(v, ptr)) {
    broken_programs_.insert(name);
    return;
  }
  std::optional<std::string> type;
  if (require(v, ptr, "type"))
    type = get_enum(
        v["type"], at(ptr, "type"),
        {"sk_msg", "sk_skb/stream_parser", "sk_skb/stream_verdict", "sk_skb/verdict", "sockops"});
  if (!type) {
    check_keys(v, ptr, {"type", "rules", "default", "frame", "sticky_drop"});
    broken_programs_.insert(name);
    return;
  }
  ProgramType t = *type == "sk_msg"                  ? ProgramType::sk_msg
                  : *type == "sk_skb/stream_parser"  ? ProgramType::stream_parser
                  : *type == "sk_skb/stream_verdict" ? ProgramType::stream_verdict
                  : *type == "sk_skb/verdict"        ? ProgramType::skb_verdict
                                                     : ProgramType::sockops;
  program_types_[name] = t;
  cur_type_ = t;
  needs_data_ = false;
  auto compiled = std::make_unique<CompiledProgram>();
  if (t == ProgramType::stream_parser) {
    check_keys(v, ptr, {"type", "frame"});
    if (require(v, ptr, "frame")) load_frame(v["frame"], at(ptr, "frame"), compiled->frame);
  } else {
    if (t == ProgramType::sockops)
      check_keys(v, ptr, {"type", "rules"});
    else if (t == ProgramType::sk_msg)
      check_keys(v, ptr, {"type", "rules", "default", "sticky_drop"});
    else
      check_keys(v, ptr, {"type", "rules", "default"});
    if (const json* sd = member(v, "sticky_drop"); sd && t == ProgramType::sk_msg) {
      if (sd->is_boolean())
        compiled->sticky_drop = sd->get<bool>();
      else
        error(at(ptr, "sticky_drop"), "expected true or false");
    }
    if (const json* d = member(v, "default"); d && t != ProgramType::sockops) {
      if (auto s = get_enum(*d, at(ptr, "default"), {"pass", "drop"}))
        compiled->default_ret = *s == "pass" ? SK_PASS : SK_DROP;
    }
    if (require(v, ptr, "rules")) load_rules(v["rules"], at(ptr, "rules"), *compiled);
  }
  compiled->needs_data = needs_data_;
  if (errors_.size() != errors_before) {
    broken_programs_.insert(name);
    return;
  }
  policy_->programs.push_back(std::make_unique<Program>(name, t, std::move(compiled)));
}

void Loader::load_frame(const json& v, const std::string& ptr, FrameSpec& out) {
  if (v.is_string()) {
    if (get_enum(v, ptr, {"whole"})) out.kind = FrameSpec::Kind::whole;
    return;
  }
  if (!v.is_object()) {
    error(
        ptr,
        "expected \"whole\" or an object with one of \"length_prefix\", \"delimiter\", \"fixed\"");
    return;
  }
  check_keys(v, ptr, {"whole", "length_prefix", "delimiter", "fixed", "max"});
  int kinds = 0;
  for (const char* k : {"whole", "length_prefix", "delimiter", "fixed"}) kinds += v.contains(k);
  if (kinds != 1) {
    error(ptr, "expected exactly one of \"whole\", \"length_prefix\", \"delimiter\", \"fixed\"");
    return;
  }
  if (const json* m = member(v, "max")) {
    if (auto n = get_uint(*m, at(ptr, "max"), 1, UINT32_MAX)) out.max = *n;
  }
  if (const json* w = member(v, "whole")) {
    if (!(w->is_boolean() && w->get<bool>())) error(at(ptr, "whole"), "expected true");
    out.kind = FrameSpec::Kind::whole;
  } else if (const json* lp = member(v, "length_prefix")) {
    out.kind = FrameSpec::Kind::length_prefix;
    const std::string p = at(ptr, "length_prefix");
    if (!expect_object(*lp, p)) return;
    check_keys(*lp, p, {"offset", "size", "endian", "adjust"});
    if (const json* o = member(*lp, "offset")) {
      if (auto n = get_uint(*o, at(p, "offset"), 0, 65535)) out.offset = static_cast<uint32_t>(*n);
    }
    if (const json* s = member(*lp, "size")) {
      const uint64_t n = s->is_number_unsigned() ? s->get<uint64_t>() : 0;
      if (n == 1 || n == 2 || n == 4 || n == 8)
        out.size = static_cast<uint32_t>(n);
      else
        error(at(p, "size"), "expected 1, 2, 4 or 8");
    }
    if (const json* e = member(*lp, "endian")) {
      if (auto s = get_enum(*e, at(p, "endian"), {"big", "little"})) out.big_endian = *s == "big";
    }
    if (const json* a = member(*lp, "adjust")) {
      if (auto n = get_int(*a, at(p, "adjust"))) out.adjust = *n;
    }
  } else if (const json* d = member(v, "delimiter")) {
    out.kind = FrameSpec::Kind::delimiter;
    if (auto b = get_bytes(*d, at(ptr, "delimiter"))) {
      if (b->empty())
        error(at(ptr, "delimiter"), "must not be empty");
      else
        out.delimiter.assign(b->begin(), b->end());
    }
  } else if (const json* f = member(v, "fixed")) {
    out.kind = FrameSpec::Kind::fixed;
    if (auto n = get_uint(*f, at(ptr, "fixed"), 1, UINT32_MAX)) out.fixed = *n;
  }
}

void Loader::load_rules(const json& v, const std::string& ptr, CompiledProgram& out) {
  if (!expect_array(v, ptr)) return;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string rp = at(ptr, std::to_string(i));
    const json& r = v[i];
    if (!expect_object(r, rp)) continue;
    check_keys(r, rp, {"if", "do"});
    Rule rule;
    if (const json* c = member(r, "if")) load_cond_object(*c, at(rp, "if"), rule.conds);
    if (require(r, rp, "do")) {
      const std::string dp = at(rp, "do");
      const json& d = r["do"];
      if (expect_array(d, dp))
        for (size_t j = 0; j < d.size(); ++j) {
          Action a;
          if (load_action(d[j], at(dp, std::to_string(j)), a)) rule.actions.push_back(std::move(a));
        }
    }
    out.rules.push_back(std::move(rule));
  }
}

// ---- conditions ----

bool Loader::load_cond_object(const json& v, const std::string& ptr, std::vector<Cond>& out) {
  if (!expect_object(v, ptr)) return false;
  bool ok = true;
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it.key() != "description")
      ok = load_cond(it.key(), it.value(), at(ptr, it.key()), out) && ok;
  return ok;
}

bool Loader::load_cond(const std::string& key, const json& v, const std::string& ptr,
                       std::vector<Cond>& out) {
  if (key == "all" || key == "any") {
    if (!expect_array(v, ptr)) return false;
    Cond c;
    c.kind = key == "all" ? Cond::Kind::all : Cond::Kind::any;
    bool ok = true;
    for (size_t i = 0; i < v.size(); ++i) {
      Cond child;
      child.kind = Cond::Kind::all;
      ok = load_cond_object(v[i], at(ptr, std::to_string(i)), child.children) && ok;
      // An item with one condition is that condition: one level less to walk.
      if (child.children.size() == 1)
        c.children.push_back(std::move(child.children[0]));
      else
        c.children.push_back(std::move(child));
    }
    out.push_back(std::move(c));
    return ok;
  }
  if (key == "not") {
    Cond c;
    c.kind = Cond::Kind::not_;
    const bool ok = load_cond_object(v, ptr, c.children);
    out.push_back(std::move(c));
    return ok;
  }
  if (key == "data") {
    if (cur_type_ == ProgramType::sockops) {
      error_key(ptr, "\"data\" is not available in sockops programs");
      return false;
    }
    needs_data_ = true;
    return load_data_cond(v, ptr, out);
  }
  if (key == "storage") {
    Cond c;
    c.kind = Cond::Kind::storage;
    if (!load_storage_cond(v, ptr, c)) return false;
    out.push_back(std::move(c));
    return true;
  }
  auto f = ctx_field(key);
  if (!f) {
    error_key(ptr, "unknown condition " + quote(key) +
                       " (expected a context field, \"data\", \"storage\", \"all\", \"any\" or "
                       "\"not\")");
    return false;
  }
  if (!field_available(*f, cur_type_)) {
    error_key(ptr, "field " + quote(key) + " is not available in " + program_type_name(cur_type_) +
                       " programs");
    return false;
  }
  Cond c;
  c.field = *f;
  if (!load_field_cond(*f, v, ptr, c)) return false;
  out.push_back(std::move(c));
  return true;
}

std::optional<uint64_t> Loader::field_literal(CtxField f, const json& v, const std::string& ptr) {
  switch (f) {
    case CtxField::local_port:
    case CtxField::remote_port:
      return get_uint(v, ptr, 0, 65535);
    case CtxField::size:
    case CtxField::len:
      return get_uint(v, ptr, 0, UINT32_MAX);
    case CtxField::local_ip4:
    case CtxField::remote_ip4: {
      in_addr a;
      if (v.is_string() && inet_pton(AF_INET, v.get<std::string>().c_str(), &a) == 1)
        return ntohl(a.s_addr);
      error(ptr, "expected an IPv4 address in dotted form (\"127.0.0.1\")");
      return std::nullopt;
    }
    case CtxField::family:
      if (v.is_string()) {
        for (const NamedValue& n : kFamilies)
          if (v.get<std::string>() == n.name) return n.value;
      } else if (v.is_number_unsigned()) {
        return get_uint(v, ptr, 0, UINT32_MAX);
      }
      error(ptr, one_of({"AF_INET", "AF_INET6", "AF_UNIX"}) + " or an integer");
      return std::nullopt;
    case CtxField::op:
      if (v.is_string()) {
        for (const NamedValue& n : kOps)
          if (v.get<std::string>() == n.name) return n.value;
      } else if (v.is_number_unsigned()) {
        return get_uint(v, ptr, 0, UINT32_MAX);
      }
      error(ptr, one_of({"active_established", "passive_established", "listen", "state_change",
                         "close", "tcp_connect"}) +
                     " or an integer");
      return std::nullopt;
    default:
      return std::nullopt;
  }
}

bool Loader::load_comparisons(
    const json& v, const std::string& ptr, bool object_only,
    const std::function<std::optional<uint64_t>(const json&, const std::string&)>& value,
    std::vector<Compare>& out, bool is_signed) {
  if (!object_only && v.is_array()) {
    Compare c;
    c.op = Compare::Op::in;
    bool ok = true;
    for (size_t i = 0; i < v.size(); ++i) {
      auto x = value(v[i], at(ptr, std::to_string(i)));
      if (x) c.set.push_back(*x);
      ok = ok && x;
    }
    out.push_back(std::move(c));
    return ok;
  }
  if (!object_only && !v.is_object()) {
    auto x = value(v, ptr);
    if (!x) return false;
    out.push_back({Compare::Op::eq, is_signed, *x});
    return true;
  }
  if (!v.is_object()) {
    error(ptr, std::string("expected an object, found ") + type_word(v));
    return false;
  }
  bool ok = true;
  size_t n = 0;
  static const std::pair<const char*, Compare::Op> kOps[] = {
      {"eq", Compare::Op::eq}, {"ne", Compare::Op::ne}, {"lt", Compare::Op::lt},
      {"le", Compare::Op::le}, {"gt", Compare::Op::gt}, {"ge", Compare::Op::ge}};
  for (auto it = v.begin(); it != v.end(); ++it) {
    const std::string p = at(ptr, it.key());
    const std::string& k = it.key();
    if (object_only && (k == "map" || k == "field" || k == "description")) continue;
    ++n;
    if (k == "in") {
      if (!expect_array(it.value(), p)) {
        ok = false;
        continue;
      }
      ok = load_comparisons(it.value(), p, false, value, out, is_signed) && ok;
      continue;
    }
    if (k == "range") {
      const json& r = it.value();
      if (!r.is_array() || r.size() != 2) {
        error(p, "expected [lo, hi]");
        ok = false;
        continue;
      }
      auto lo = value(r[0], at(p, "0"));
      auto hi = value(r[1], at(p, "1"));
      if (!lo || !hi) {
        ok = false;
        continue;
      }
      out.push_back({Compare::Op::range, is_signed, *lo, *hi});
      continue;
    }
    bool known = false;
    for (const auto& [name, op] : kOps)
      if (k == name) {
        known = true;
        auto x = value(it.value(), p);
        if (x)
          out.push_back({op, is_signed, *x});
        else
          ok = false;
      }
    if (!known) {
      error_key(p, "unknown comparison " + quote(k) + " (" +
                       one_of({"eq", "ne", "lt", "le", "gt", "ge", "in", "range"}) + ")");
      ok = false;
    }
  }
  if (n == 0) {
    error(ptr,
          "expected at least one comparison (\"eq\", \"ne\", \"lt\", \"le\", \"gt\", \"ge\", "
          "\"in\", \"range\")");
    return false;
  }
  return ok;
}

bool Loader::load_field_cond(CtxField f, const json& v, const std::string& ptr, Cond& out) {
  if (is_ip6(f)) {
    out.kind = Cond::Kind::ip6;
    auto parse6 = [&](const json& x, const std::string& p) -> bool {
      in6_addr a;
      if (x.is_string() && inet_pton(AF_INET6, x.get<std::string>().c_str(), &a) == 1) {
        std::array<uint8_t, 16> b;
        memcpy(b.data(), &a, 16);
        out.ip6_set.push_back(b);
        return true;
      }
      error(p, "expected an IPv6 address (\"::1\")");
      return false;
    };
    if (v.is_string()) return parse6(v, ptr);
    const json* list = &v;
    std::string lp = ptr;
    if (v.is_object()) {
      if (v.size() != 1 || !(v.contains("in") || v.contains("ne") || v.contains("eq"))) {
        error(ptr, "an IPv6 field compares only with \"eq\", \"ne\" or \"in\"");
        return false;
      }
      const std::string k = v.begin().key();
      lp = at(ptr, k);
      list = &v.begin().value();
      out.negate = k == "ne";
      if (k != "in") return parse6(*list, lp);
    }
    if (!expect_array(*list, lp)) return false;
    bool ok = true;
    for (size_t i = 0; i < list->size(); ++i)
      ok = parse6((*list)[i], at(lp, std::to_string(i))) && ok;
    return ok;
  }
  out.kind = Cond::Kind::field;
  return load_comparisons(
      v, ptr, false, [&](const json& x, const std::string& p) { return field_literal(f, x, p); },
      out.cmps);
}

bool Loader::load_data_cond(const json& v, const std::string& ptr, std::vector<Cond>& out) {
  if (!expect_object(v, ptr)) return false;
  bool ok = check_keys(
      v, ptr, {"prefix", "contains", "equals", "at", "u8", "be16", "be32", "le16", "le32"});
  size_t n = 0;
  static const std::pair<const char*, Cond::Kind> kText[] = {
      {"prefix", Cond::Kind::data_prefix},
      {"contains", Cond::Kind::data_contains},
      {"equals", Cond::Kind::data_equals}};
  for (const auto& [k, kind] : kText)
    if (const json* x = member(v, k)) {
      ++n;
      auto b = get_bytes(*x, at(ptr, k));
      if (!b) {
        ok = false;
        continue;
      }
      Cond c;
      c.kind = kind;
      c.bytes = std::move(*b);
      out.push_back(std::move(c));
    }
  static const std::tuple<const char*, uint8_t, bool> kInts[] = {{"u8", 1, true},
                                                                 {"be16", 2, true},
                                                                 {"be32", 4, true},
                                                                 {"le16", 2, false},
                                                                 {"le32", 4, false}};
  size_t ints = 0;
  for (const auto& [k, width, big] : kInts) {
    const json* x = member(v, k);
    if (!x) continue;
    ++n;
    ++ints;
    Cond c;
    c.kind = Cond::Kind::data_int;
    c.width = width;
    c.big_endian = big;
    const uint64_t max = width == 1 ? 0xff : width == 2 ? 0xffff : 0xffffffff;
    if (!load_comparisons(
            *x, at(ptr, k), false,
            [&](const json& y, const std::string& p) { return get_uint(y, p, 0, max); }, c.cmps))
      ok = false;
    if (const json* a = member(v, "at")) {
      if (auto off = get_uint(*a, at(ptr, "at"), 0, UINT32_MAX))
        c.at = static_cast<uint32_t>(*off);
      else
        ok = false;
    } else {
      error(at(ptr, k), quote(k) + " needs \"at\", the offset of the integer");
      ok = false;
    }
    out.push_back(std::move(c));
  }
  if (v.contains("at") && ints == 0) {
    error_key(at(ptr, "at"), "\"at\" needs one of \"u8\", \"be16\", \"be32\", \"le16\", \"le32\"");
    return false;
  }
  if (n == 0 && ok) {
    error(ptr, "expected one of \"prefix\", \"contains\", \"equals\", or \"at\" with an integer");
    return false;
  }
  return ok;
}

std::optional<uint32_t> Loader::map_ref(const json& obj, const std::string& ptr,
                                        std::initializer_list<MapType> types) {
  if (!require(obj, ptr, "map")) return std::nullopt;
  const std::string mp = at(ptr, "map");
  auto name = get_string(obj["map"], mp);
  if (!name) return std::nullopt;
  if (broken_maps_.count(*name)) return std::nullopt;
  const int idx = policy_->map_index(*name);
  if (idx < 0) {
    error(mp, "no map named " + quote(*name));
    return std::nullopt;
  }
  const MapType t = policy_->maps[static_cast<size_t>(idx)].type;
  if (std::find(types.begin(), types.end(), t) == types.end()) {
    std::string want;
    for (MapType x : types) {
      if (!want.empty()) want += " or ";
      want += map_type_name(x);
    }
    error(mp, "map " + quote(*name) + " is a " + map_type_name(t) + ", expected a " + want);
    return std::nullopt;
  }
  return static_cast<uint32_t>(idx);
}

const ValueField* Loader::storage_field(uint32_t map, const json& v, const std::string& ptr) {
  auto name = get_string(v, ptr);
  if (!name) return nullptr;
  const MapSpec& m = policy_->maps[map];
  for (const ValueField& f : m.value)
    if (f.name == *name) return &f;
  std::vector<std::string> names;
  for (const ValueField& f : m.value) names.push_back(f.name);
  error(ptr, "map " + quote(m.name) + " has no field " + quote(*name) +
                 " (fields: " + join_quoted(names) + ")");
  return nullptr;
}

bool Loader::load_storage_cond(const json& v, const std::string& ptr, Cond& out) {
  if (!expect_object(v, ptr)) return false;
  auto map = map_ref(v, ptr, {MapType::sk_storage});
  const bool has_field = require(v, ptr, "field");
  if (!map) return false;
  out.map = *map;
  if (!has_field) return false;
  const ValueField* f = storage_field(*map, v["field"], at(ptr, "field"));
  if (!f) return false;
  if (f->kind == ValueField::Kind::bytes) {
    error(at(ptr, "field"),
          "field " + quote(f->name) + " is bytes[N]: only integer fields compare");
    return false;
  }
  out.value = *f;
  const bool is_signed = f->kind == ValueField::Kind::i64;
  const uint64_t max = f->size == 8 ? UINT64_MAX : (uint64_t{1} << (8 * f->size)) - 1;
  return load_comparisons(
      v, ptr, true,
      [&](const json& x, const std::string& p) -> std::optional<uint64_t> {
        if (is_signed) {
          auto n = get_int(x, p);
          if (n) return static_cast<uint64_t>(*n);
          return std::nullopt;
        }
        return get_uint(x, p, 0, max);
      },
      out.cmps, is_signed);
}

// ---- actions ----

bool Loader::load_action(const json& v, const std::string& ptr, Action& out) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s == "pass" || s == "drop") {
      if (cur_type_ == ProgramType::sockops) {
        error(ptr, quote(s) + " is not available in sockops programs (they return no verdict)");
        return false;
      }
      out.kind = s == "pass" ? Action::Kind::pass : Action::Kind::drop;
      return true;
    }
    error(ptr, "expected \"pass\", \"drop\" or an action object");
    return false;
  }
  if (!v.is_object() || v.size() != 1) {
    error(ptr, "expected \"pass\", \"drop\" or an object with exactly one action key");
    return false;
  }
  return load_action_body(v.begin().key(), v.begin().value(), at(ptr, v.begin().key()), out);
}

bool Loader::load_action_body(const std::string& kind, const json& v, const std::string& ptr,
                              Action& out) {
  static const std::pair<const char*, Action::Kind> kKinds[] = {
      {"redirect", Action::Kind::redirect},
      {"apply_bytes", Action::Kind::apply_bytes},
      {"cork_bytes", Action::Kind::cork_bytes},
      {"pull_data", Action::Kind::pull_data},
      {"push_data", Action::Kind::push_data},
      {"pop_data", Action::Kind::pop_data},
      {"storage", Action::Kind::storage},
      {"storage_delete", Action::Kind::storage_delete},
      {"map_update", Action::Kind::map_update},
      {"map_delete", Action::Kind::map_delete},
      {"log", Action::Kind::log}};
  bool known = false;
  for (const auto& [name, k] : kKinds)
    if (kind == name) {
      out.kind = k;
      known = true;
    }
  if (!known) {
    error_key(ptr, "unknown action " + quote(kind) + " (" +
                       one_of({"pass", "drop", "redirect", "apply_bytes", "cork_bytes", "pull_data",
                               "push_data", "pop_data", "storage", "storage_delete", "map_update",
                               "map_delete", "log"}) +
                       ")");
    return false;
  }
  const bool msg_only = out.kind == Action::Kind::apply_bytes ||
                        out.kind == Action::Kind::cork_bytes ||
                        out.kind == Action::Kind::pull_data ||
                        out.kind == Action::Kind::push_data || out.kind == Action::Kind::pop_data;
  if ((msg_only && cur_type_ != ProgramType::sk_msg) ||
      (out.kind == Action::Kind::redirect && cur_type_ == ProgramType::sockops)) {
    error_key(ptr,
              quote(kind) + " is not available in " + program_type_name(cur_type_) + " programs");
    return false;
  }
  const size_t errors_before = errors_.size();
  switch (out.kind) {
    case Action::Kind::apply_bytes:
    case Action::Kind::cork_bytes:
      if (auto n = get_uint(v, ptr, 0, UINT32_MAX)) out.a = static_cast<uint32_t>(*n);
      break;
    case Action::Kind::pull_data:
    case Action::Kind::pop_data: {
      if (!expect_object(v, ptr)) break;
      const bool pull = out.kind == Action::Kind::pull_data;
      const char* second = pull ? "end" : "len";
      check_keys(v, ptr, {"start", second, "flags"});
      needs_data_ = true;
      if (require(v, ptr, "start"))
        if (auto n = get_uint(v["start"], at(ptr, "start"), 0, UINT32_MAX))
          out.a = static_cast<uint32_t>(*n);
      if (require(v, ptr, second))
        if (auto n = get_uint(v[second], at(ptr, second), 0, UINT32_MAX))
          out.b = static_cast<uint32_t>(*n);
      if (const json* f = member(v, "flags"))
        if (auto n = get_uint(*f, at(ptr, "flags"))) out.flags = *n;
      break;
    }
    case Action::Kind::push_data: {
      if (!expect_object(v, ptr)) break;
      check_keys(v, ptr, {"start", "bytes", "flags"});
      needs_data_ = true;
      if (require(v, ptr, "start"))
        if (auto n = get_uint(v["start"], at(ptr, "start"), 0, UINT32_MAX))
          out.a = static_cast<uint32_t>(*n);
      if (require(v, ptr, "bytes"))
        if (auto b = get_bytes(v["bytes"], at(ptr, "bytes")))
          out.bytes.assign(b->begin(), b->end());
      if (const json* f = member(v, "flags"))
        if (auto n = get_uint(*f, at(ptr, "flags"))) out.flags = *n;
      break;
    }
    case Action::Kind::redirect:
    case Action::Kind::map_update:
    case Action::Kind::map_delete: {
      if (!expect_object(v, ptr)) break;
      if (out.kind == Action::Kind::map_delete)
        check_keys(v, ptr, {"map", "key"});
      else
        check_keys(v, ptr, {"map", "key", "flags"});
      auto map = map_ref(v, ptr, {MapType::sockmap, MapType::sockhash});
      const bool has_key = require(v, ptr, "key");
      if (map) {
        out.map = *map;
        if (has_key) load_key(v["key"], at(ptr, "key"), *map, out.key);
      }
      const json* f = member(v, "flags");
      if (!f) break;
      const std::string fp = at(ptr, "flags");
      if (out.kind == Action::Kind::redirect) {
        // A list of names or numbers, or one of them; numbers other than
        // BPF_F_INGRESS are kept and make the helper return SK_DROP.
        auto one = [&](const json& x, const std::string& p) {
          if (x.is_number_unsigned()) {
            out.flags |= x.get<uint64_t>();
          } else if (auto s = get_enum(x, p, {"BPF_F_INGRESS"})) {
            out.flags |= BPF_F_INGRESS;
          }
        };
        if (f->is_array()) {
          for (size_t i = 0; i < f->size(); ++i) one((*f)[i], at(fp, std::to_string(i)));
        } else {
          one(*f, fp);
        }
      } else if (f->is_number_unsigned()) {
        out.flags = f->get<uint64_t>();
      } else if (auto s = get_enum(*f, fp, {"BPF_ANY", "BPF_NOEXIST", "BPF_EXIST"})) {
        out.flags = *s == "BPF_ANY" ? BPF_ANY : *s == "BPF_NOEXIST" ? BPF_NOEXIST : BPF_EXIST;
      }
      break;
    }
    case Action::Kind::storage: {
      if (!expect_object(v, ptr)) break;
      check_keys(v, ptr, {"map", "create", "set", "add"});
      if (const json* c = member(v, "create")) {
        if (c->is_boolean())
          out.create = c->get<bool>();
        else
          error(at(ptr, "create"), "expected true or false");
      }
      auto map = map_ref(v, ptr, {MapType::sk_storage});
      if (!map) break;
      out.map = *map;
      for (const char* op : {"set", "add"}) {
        const json* w = member(v, op);
        if (!w) continue;
        const std::string wp = at(ptr, op);
        if (!expect_object(*w, wp)) continue;
        for (auto it = w->begin(); it != w->end(); ++it) {
          const std::string fp = at(wp, it.key());
          const json name = it.key();
          const ValueField* target = storage_field(*map, name, fp);
          if (!target) continue;
          StorageWrite sw;
          sw.add = op == std::string_view("add");
          sw.target = *target;
          const json& val = it.value();
          if (target->kind == ValueField::Kind::bytes) {
            if (sw.add) {
              error(fp, "field " + quote(target->name) +
                            " is bytes[N]: \"add\" needs an integer field");
              continue;
            }
            auto b = get_bytes(val, fp);
            if (!b) continue;
            if (b->size() > target->size) {
              error(fp, "expected at most " + std::to_string(target->size) + " bytes");
              continue;
            }
            sw.bytes.assign(b->begin(), b->end());
            sw.bytes.resize(target->size, 0);
          } else if (val.is_string()) {
            auto f = ctx_field(val.get<std::string>());
            if (!f || is_ip6(*f) || !field_available(*f, cur_type_)) {
              error(fp, "expected an integer or a context field of " +
                            std::string(program_type_name(cur_type_)) + " programs");
              continue;
            }
            sw.from_ctx = true;
            sw.field = *f;
          } else if (auto n = get_int_bits(val, fp)) {
            sw.value = *n;
          } else {
            continue;
          }
          out.writes.push_back(std::move(sw));
        }
      }
      break;
    }
    case Action::Kind::storage_delete: {
      if (!expect_object(v, ptr)) break;
      check_keys(v, ptr, {"map"});
      if (auto map = map_ref(v, ptr, {MapType::sk_storage})) out.map = *map;
      break;
    }
    case Action::Kind::log:
      if (auto s = get_string(v, ptr)) out.text = *s;
      break;
    default:
      break;
  }
  return errors_.size() == errors_before;
}

// ---- keys ----

bool Loader::load_key_part(KeyField kf, const json& v, const std::string& ptr, KeyPart& out) {
  out.size = static_cast<uint8_t>(key_field_size(kf));
  const bool ip6_slot = kf == KeyField::local_ip6 || kf == KeyField::remote_ip6;
  const bool ip4_slot = kf == KeyField::local_ip4 || kf == KeyField::remote_ip4;
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (auto f = ctx_field(s)) {
      if (!field_available(*f, cur_type_)) {
        error(ptr, "field " + quote(s) + " is not available in " + program_type_name(cur_type_) +
                       " programs");
        return false;
      }
      if (is_ip6(*f) != ip6_slot) {
        error(ptr, "key field " + quote(key_field_name(kf)) + " is " + std::to_string(out.size) +
                       " bytes; context field " + quote(s) + " does not fit");
        return false;
      }
      out.from_ctx = true;
      out.field = *f;
      return true;
    }
    if (ip4_slot) {
      in_addr a;
      if (inet_pton(AF_INET, s.c_str(), &a) == 1) {
        memcpy(out.literal.data(), &a.s_addr, 4);
        return true;
      }
    }
    if (ip6_slot) {
      in6_addr a;
      if (inet_pton(AF_INET6, s.c_str(), &a) == 1) {
        memcpy(out.literal.data(), &a, 16);
        return true;
      }
    }
    error(ptr, "expected a context field name" +
                   std::string(ip4_slot   ? ", an IPv4 address"
                               : ip6_slot ? ", an IPv6 address"
                                          : "") +
                   (ip6_slot ? "" : " or an integer"));
    return false;
  }
  if (ip6_slot) {
    error(ptr, "expected a context field name or an IPv6 address");
    return false;
  }
  auto n = get_uint(v, ptr, 0, out.size == 8 ? UINT64_MAX : UINT32_MAX);
  if (!n) return false;
  if (out.size == 8) {
    memcpy(out.literal.data(), &*n, 8);
  } else {
    const auto x = static_cast<uint32_t>(*n);
    memcpy(out.literal.data(), &x, 4);
  }
  return true;
}

bool Loader::load_key(const json& v, const std::string& ptr, uint32_t map, KeySpec& out) {
  const MapSpec& m = policy_->maps[map];
  if (m.type == MapType::sockmap) {
    KeyPart part;
    if (v.is_string() && (v == "self" || v == "peer")) {
      error(ptr, "map " + quote(m.name) + " is a sockmap: its key is an index, not " +
                     quote(v.get<std::string>()));
      return false;
    }
    if (!v.is_string() && !v.is_number()) {
      error(ptr, "expected an index (a sockmap key)");
      return false;
    }
    if (!load_key_part(KeyField::u32, v, ptr, part)) return false;
    out.parts.push_back(part);
    out.size = 4;
    return true;
  }
  out.size = m.key_size;
  if (v.is_string() && (v == "self" || v == "peer")) {
    const bool peer = v == "peer";
    for (KeyField kf : m.key) {
      auto f = key_self(kf, peer);
      if (!f) {
        error(ptr, "key field " + quote(key_field_name(kf)) + " of map " + quote(m.name) +
                       " has no context field: use a key object");
        return false;
      }
      KeyPart part;
      part.size = static_cast<uint8_t>(key_field_size(kf));
      part.from_ctx = true;
      part.field = *f;
      out.parts.push_back(part);
    }
    return true;
  }
  if (v.is_array()) {
    if (v.size() != m.key.size()) {
      error(ptr, "expected " + std::to_string(m.key.size()) + " values, one per key field of map " +
                     quote(m.name));
      return false;
    }
    bool ok = true;
    for (size_t i = 0; i < v.size(); ++i) {
      KeyPart part;
      ok = load_key_part(m.key[i], v[i], at(ptr, std::to_string(i)), part) && ok;
      out.parts.push_back(part);
    }
    return ok;
  }
  if (!v.is_object()) {
    error(ptr, "expected \"self\", \"peer\", a key object or an array (map " + quote(m.name) +
                   " is a sockhash)");
    return false;
  }
  std::vector<std::string> names;
  for (KeyField kf : m.key) names.push_back(key_field_name(kf));
  for (size_t i = 0; i < names.size(); ++i)
    if (std::count(names.begin(), names.end(), names[i]) > 1) {
      error(ptr,
            "the key of map " + quote(m.name) + " repeats " + quote(names[i]) + ": use an array");
      return false;
    }
  bool ok = true;
  for (auto it = v.begin(); it != v.end(); ++it)
    if (std::find(names.begin(), names.end(), it.key()) == names.end()) {
      error_key(at(ptr, it.key()), quote(it.key()) + " is not a field of the key of map " +
                                       quote(m.name) + " (" + join_quoted(names) + ")");
      ok = false;
    }
  for (size_t i = 0; i < m.key.size(); ++i) {
    KeyPart part;
    if (!v.contains(names[i])) {
      error(ptr, "missing key field " + quote(names[i]));
      ok = false;
    } else {
      ok = load_key_part(m.key[i], v[names[i]], at(ptr, names[i]), part) && ok;
    }
    out.parts.push_back(part);
  }
  return ok;
}

// ---- attach and sockops ----

void Loader::load_attach(const json& v, const std::string& ptr) {
  if (!expect_array(v, ptr)) return;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string ap = at(ptr, std::to_string(i));
    const json& a = v[i];
    if (!expect_object(a, ap)) continue;
    check_keys(a, ap, {"program", "map", "attach_type"});
    const Program* prog = nullptr;
    std::optional<ProgramType> ptype;
    if (require(a, ap, "program")) {
      const std::string pp = at(ap, "program");
      if (auto name = get_string(a["program"], pp)) {
        auto t = program_types_.find(*name);
        if (t == program_types_.end())
          error(pp, "no program named " + quote(*name));
        else if (!broken_programs_.count(*name)) {
          ptype = t->second;
          prog = policy_->program(*name);
        }
        if (ptype == ProgramType::sockops) {
          error(pp, "program " + quote(*name) +
                        " is sockops: it runs from the \"sockops\" list, not from a map");
          ptype.reset();
        }
      }
    }
    std::optional<uint32_t> map;
    if (require(a, ap, "map")) {
      const std::string mp = at(ap, "map");
      if (auto name = get_string(a["map"], mp)) {
        const int idx = policy_->map_index(*name);
        if (idx < 0 && !broken_maps_.count(*name)) {
          error(mp, "no map named " + quote(*name));
        } else if (idx >= 0 && !broken_maps_.count(*name)) {
          if (policy_->maps[static_cast<size_t>(idx)].type == MapType::sk_storage)
            error(mp,
                  "map " + quote(*name) +
                      " is a sk_storage: programs attach to a sockmap or sockhash (EOPNOTSUPP)");
          else
            map = static_cast<uint32_t>(idx);
        }
      }
    }
    std::optional<AttachType> type;
    if (require(a, ap, "attach_type")) {
      auto s = get_enum(a["attach_type"], at(ap, "attach_type"),
                        {"BPF_SK_MSG_VERDICT", "BPF_SK_SKB_STREAM_PARSER",
                         "BPF_SK_SKB_STREAM_VERDICT", "BPF_SK_SKB_VERDICT"});
      if (s)
        type = *s == "BPF_SK_MSG_VERDICT"          ? AttachType::sk_msg_verdict
               : *s == "BPF_SK_SKB_STREAM_PARSER"  ? AttachType::sk_skb_stream_parser
               : *s == "BPF_SK_SKB_STREAM_VERDICT" ? AttachType::sk_skb_stream_verdict
                                                   : AttachType::sk_skb_verdict;
    }
    if (ptype && type) {
      const bool fits =
          *ptype == ProgramType::sk_msg ? *type == AttachType::sk_msg_verdict
          : *ptype == ProgramType::stream_parser
              ? *type == AttachType::sk_skb_stream_parser
              : *type == AttachType::sk_skb_stream_verdict || *type == AttachType::sk_skb_verdict;
      if (!fits) {
        const char* want = *ptype == ProgramType::sk_msg ? "BPF_SK_MSG_VERDICT"
                           : *ptype == ProgramType::stream_parser
                               ? "BPF_SK_SKB_STREAM_PARSER"
                               : "BPF_SK_SKB_STREAM_VERDICT or BPF_SK_SKB_VERDICT";
        error(at(ap, "attach_type"),
              std::string("program ") + quote(a["program"].get<std::string>()) + " is " +
                  program_type_name(*ptype) + ": expected " + want + " (EINVAL)");
        type.reset();
      }
    }
    if (!prog || !map || !type) continue;
    // The kernel replaces a program attached twice in one role; in a policy
    // that is a mistake (the first would never run), so it is refused.
    if (const Program* old = policy_->attached(*map, *type)) {
      error(ap, "map " + quote(policy_->maps[*map].name) + " already has " + quote(old->name()) +
                    " as " + attach_type_name(*type));
      continue;
    }
    const AttachType other = *type == AttachType::sk_skb_stream_verdict
                                 ? AttachType::sk_skb_verdict
                                 : AttachType::sk_skb_stream_verdict;
    if ((*type == AttachType::sk_skb_stream_verdict || *type == AttachType::sk_skb_verdict) &&
        policy_->attached(*map, other)) {
      error(at(ap, "attach_type"), "map " + quote(policy_->maps[*map].name) + " already has " +
                                       attach_type_name(other) + ": " + attach_type_name(*type) +
                                       " and " + attach_type_name(other) +
                                       " exclude each other (EBUSY)");
      continue;
    }
    policy_->attach.push_back({prog, *map, *type});
  }
}

void Loader::load_sockops(const json& v, const std::string& ptr) {
  if (!expect_array(v, ptr)) return;
  for (size_t i = 0; i < v.size(); ++i) {
    const std::string sp = at(ptr, std::to_string(i));
    auto name = get_string(v[i], sp);
    if (!name) continue;
    auto t = program_types_.find(*name);
    if (t == program_types_.end()) {
      error(sp, "no program named " + quote(*name));
      continue;
    }
    if (t->second != ProgramType::sockops) {
      error(sp, "program " + quote(*name) + " is " + program_type_name(t->second) +
                    ", expected a sockops program");
      continue;
    }
    const Program* p = policy_->program(*name);
    if (!p) continue;
    if (std::find(policy_->sockops.begin(), policy_->sockops.end(), p) != policy_->sockops.end()) {
      error(sp, "program " + quote(*name) + " is already in the sockops list");
      continue;
    }
    policy_->sockops.push_back(p);
  }
}

}  // namespace

const Program* Policy::program(std::string_view name) const noexcept {
  for (const auto& p : programs)
    if (p->name() == name) return p.get();
  return nullptr;
}

int Policy::map_index(std::string_view name) const noexcept {
  for (size_t i = 0; i < maps.size(); ++i)
    if (maps[i].name == name) return static_cast<int>(i);
  return -1;
}

const Program* Policy::attached(uint32_t map, AttachType type) const noexcept {
  for (const Attachment& a : attach)
    if (a.map == map && a.type == type) return a.program;
  return nullptr;
}

const char* map_type_name(MapType t) noexcept {
  switch (t) {
    case MapType::sockmap:
      return "sockmap";
    case MapType::sockhash:
      return "sockhash";
    case MapType::sk_storage:
      return "sk_storage";
  }
  return "?";
}

const char* attach_type_name(AttachType t) noexcept {
  switch (t) {
    case AttachType::sk_msg_verdict:
      return "BPF_SK_MSG_VERDICT";
    case AttachType::sk_skb_stream_parser:
      return "BPF_SK_SKB_STREAM_PARSER";
    case AttachType::sk_skb_stream_verdict:
      return "BPF_SK_SKB_STREAM_VERDICT";
    case AttachType::sk_skb_verdict:
      return "BPF_SK_SKB_VERDICT";
  }
  return "?";
}

std::string LoadError::format(std::string_view source) const {
  if (line == 0 && pointer.empty()) return message;
  std::string out(source);
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += ": ";
  if (!pointer.empty()) out += pointer + ": ";
  out += message;
  return out;
}

LoadResult load_policy_text(std::string_view text) {
  LoadResult result;
  const JsonDoc doc = JsonDoc::parse(text);
  for (const JsonIssue& issue : doc.issues()) {
    const LineCol lc = doc.line_col(issue.offset);
    result.errors.push_back({issue.pointer, lc.line, lc.column, issue.message});
  }
  if (!doc.ok()) return result;
  std::unique_ptr<Policy> policy = Loader(doc, result.errors).load();
  if (result.errors.empty()) {
    result.policy = std::move(policy);
    return result;
  }
  std::stable_sort(result.errors.begin(), result.errors.end(),
                   [](const LoadError& a, const LoadError& b) {
                     return std::tie(a.line, a.column) < std::tie(b.line, b.column);
                   });
  return result;
}

std::string read_policy_file(const std::string& path, std::string* text) {
  // The shim reads a policy inside a program (at start, on reload): errno is
  // the program's, and the fd is closed even if the text cannot be allocated.
  struct Guard {
    int saved_errno = errno;
    int fd = -1;
    ~Guard() {
      if (fd >= 0) close(fd);
      errno = saved_errno;
    }
  } g;
  // O_NONBLOCK: opening a fifo for reading would otherwise wait for a writer.
  g.fd = open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (g.fd < 0 || fstat(g.fd, &st) != 0) return strerror(errno);
  if (S_ISDIR(st.st_mode)) return strerror(EISDIR);
  if (!S_ISREG(st.st_mode)) return "not a regular file";
  if (st.st_size > static_cast<off_t>(kMaxPolicyBytes)) return "larger than 16 MiB";
  // pread, not read: inside the shim read() is a hook; this fd is no socket.
  text->resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  while (got < text->size()) {
    const ssize_t n = pread(g.fd, text->data() + got, text->size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return strerror(errno);
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  text->resize(got);  // a file that shrank while read: what it holds now
  return "";
}

std::string read_error(std::string_view path, std::string_view why) {
  return "cannot read policy " + std::string(path) + ": " + std::string(why);
}

LoadResult load_policy_file(const std::string& path) {
  std::string text;
  if (std::string why = read_policy_file(path, &text); !why.empty()) {
    LoadResult r;
    r.errors.push_back({"", 0, 0, read_error(path, why)});
    return r;
  }
  return load_policy_text(text);
}

}  // namespace sockshim::policy
