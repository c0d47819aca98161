// POLICY.md v1 -> Policy: load_policy_text, the document's top level, the
// typed reads every section uses, and references to maps. One pass validates
// and compiles.
#include "policy/loader.h"

#include <algorithm>
#include <tuple>

namespace sockshim::policy {

std::string one_of(std::span<const std::string_view> names) {
  return "expected one of " + quoted_list(names);
}

std::string one_of(std::initializer_list<std::string_view> names) {
  return one_of(std::span<const std::string_view>(names.begin(), names.size()));
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

// ---- errors and typed reads ----

void Loader::error_at(uint32_t offset, const std::string& ptr, std::string message) {
  const LineCol lc = doc_.line_col(offset);
  errors_.push_back({ptr, lc.line, lc.column, std::move(message)});
}

void Loader::error(const std::string& ptr, std::string message) {
  error_at(doc_.pos(ptr).value, ptr, std::move(message));
}

void Loader::error_key(const std::string& ptr, std::string message) {
  error_at(doc_.pos(ptr).key, ptr, std::move(message));
}

bool Loader::expect_object(const json& v, const std::string& ptr) {
  if (v.is_object()) return true;
  error(ptr, std::string("expected an object, found ") + type_word(v));
  return false;
}

bool Loader::expect_array(const json& v, const std::string& ptr) {
  if (v.is_array()) return true;
  error(ptr, std::string("expected an array, found ") + type_word(v));
  return false;
}

std::optional<std::string> Loader::get_string(const json& v, const std::string& ptr) {
  if (v.is_string()) return v.get<std::string>();
  error(ptr, std::string("expected a string, found ") + type_word(v));
  return std::nullopt;
}

std::optional<uint64_t> Loader::get_uint(const json& v, const std::string& ptr, uint64_t lo,
                                         uint64_t hi) {
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

std::optional<int64_t> Loader::get_int(const json& v, const std::string& ptr) {
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<int64_t>();
  if (v.is_number_unsigned() && v.get<uint64_t>() <= INT64_MAX)
    return static_cast<int64_t>(v.get<uint64_t>());
  error(ptr, "expected an integer");
  return std::nullopt;
}

std::optional<uint64_t> Loader::get_int_bits(const json& v, const std::string& ptr) {
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) return static_cast<uint64_t>(v.get<int64_t>());
  error(ptr, "expected an integer");
  return std::nullopt;
}

std::optional<std::string> Loader::get_enum(const json& v, const std::string& ptr, Names names) {
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    for (std::string_view n : names)
      if (s == n) return s;
  }
  error(ptr, one_of(names));
  return std::nullopt;
}

bool Loader::check_keys(const json& obj, const std::string& ptr, Names allowed) {
  bool ok = true;
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (it.key() == "description") continue;
    if (std::find(allowed.begin(), allowed.end(), it.key()) != allowed.end()) continue;
    error_key(at(ptr, it.key()), "unknown key " + quote(it.key()) + " (" + one_of(allowed) + ")");
    ok = false;
  }
  return ok;
}

bool Loader::require(const json& obj, const std::string& ptr, std::string_view key) {
  if (obj.contains(key)) return true;
  error(ptr, "missing required key " + quote(key));
  return false;
}

const json* Loader::member(const json& obj, std::string_view key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

namespace {

int nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::optional<std::string> Loader::get_bytes(const json& v, const std::string& ptr) {
  if (v.is_string()) return v.get<std::string>();
  if (!v.is_object()) {
    error(ptr, "expected a string or {\"hex\": \"...\"}");
    return std::nullopt;
  }
  check_keys(v, ptr, {"hex"});
  if (!require(v, ptr, "hex")) return std::nullopt;
  const std::string p = at(ptr, "hex");
  auto hex = get_string(v["hex"], p);
  if (!hex) return std::nullopt;
  if (hex->size() % 2 != 0) {
    error(p, "expected an even number of hex digits");
    return std::nullopt;
  }
  std::string out;
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

// ---- references ----

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
  std::vector<std::string_view> names;
  for (const ValueField& f : m.value) names.push_back(f.name);
  error(ptr, "map " + quote(m.name) + " has no field " + quote(*name) +
                 " (fields: " + quoted_list(names) + ")");
  return nullptr;
}

std::string Loader::unavailable(std::string_view field_name, CtxField f) const {
  if (info(f).programs & bit(cur_type_)) return "";
  return "field " + quote(field_name) + " is not available in " + program_type_name(cur_type_) +
         " programs";
}

LoadResult load_policy_text(std::string_view text, const std::string& base_dir) {
  LoadResult result;
  const JsonDoc doc = JsonDoc::parse(text);
  for (const JsonIssue& issue : doc.issues()) {
    const LineCol lc = doc.line_col(issue.offset);
    result.errors.push_back({issue.pointer, lc.line, lc.column, issue.message});
  }
  if (!doc.ok()) return result;
  std::unique_ptr<Policy> policy = Loader(doc, result.errors, base_dir).load();
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

}  // namespace sockshim::policy
