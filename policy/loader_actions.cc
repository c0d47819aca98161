// A rule's "do": verdicts and helper calls, each checked against the program
// types that have it (vocabulary.h's kActions).
#include "policy/loader.h"

namespace sockshim::policy {

bool Loader::load_action(const json& v, const std::string& ptr, Action& out) {
  const auto verdicts =
      names_of(kActions, [](const ActionInfo& a) { return a.args != ActionArgs::none; });
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    const ActionInfo* a = find_name(kActions, s);
    if (a && a->args == ActionArgs::none) {
      if (!(a->programs & bit(cur_type_))) {
        error(ptr, quote(s) + " is not available in " + program_type_name(cur_type_) +
                       " programs (they return no verdict)");
        return false;
      }
      out.kind = a->kind;
      return true;
    }
    error(ptr, "expected " + quoted_list(verdicts) + " or an action object");
    return false;
  }
  if (!v.is_object() || v.size() != 1) {
    error(ptr, "expected " + quoted_list(verdicts) + " or an object with exactly one action key");
    return false;
  }
  return load_action_body(v.begin().key(), v.begin().value(), at(ptr, v.begin().key()), out);
}

bool Loader::load_action_body(const std::string& kind, const json& v, const std::string& ptr,
                              Action& out) {
  const ActionInfo* a = find_name(kActions, kind);
  if (!a || a->args == ActionArgs::none) {
    error_key(ptr, "unknown action " + quote(kind) + " (" + one_of(names_of(kActions)) + ")");
    return false;
  }
  out.kind = a->kind;
  if (!(a->programs & bit(cur_type_))) {
    error_key(ptr,
              quote(kind) + " is not available in " + program_type_name(cur_type_) + " programs");
    return false;
  }
  const size_t errors_before = errors_.size();
  if (!a->keys.empty()) {
    if (!expect_object(v, ptr)) return false;
    check_keys(v, ptr, a->keys);
    if (a->needs_data) needs_data_ = true;
  }
  switch (a->args) {
    case ActionArgs::count:
      if (auto n = get_uint(v, ptr, 0, UINT32_MAX)) out.a = static_cast<uint32_t>(*n);
      break;
    case ActionArgs::range:
      load_range(*a, v, ptr, out);
      break;
    case ActionArgs::push:
      load_push(v, ptr, out);
      break;
    case ActionArgs::map_key:
      load_map_key(*a, v, ptr, out);
      break;
    case ActionArgs::storage:
      load_storage_action(v, ptr, out);
      break;
    case ActionArgs::map:
      if (auto map = map_ref(v, ptr, {MapType::sk_storage})) out.map = *map;
      break;
    case ActionArgs::text:
      if (auto s = get_string(v, ptr)) out.text = *s;
      break;
    case ActionArgs::none:
      break;
  }
  return errors_.size() == errors_before;
}

// A required u32 member of an action object.
std::optional<uint32_t> Loader::load_u32_member(const json& v, const std::string& ptr,
                                                std::string_view key) {
  if (!require(v, ptr, key)) return std::nullopt;
  auto n = get_uint(v[key], at(ptr, key), 0, UINT32_MAX);
  if (!n) return std::nullopt;
  return static_cast<uint32_t>(*n);
}

// pull_data {start, end} and pop_data {start, len}: the second key is keys[1].
void Loader::load_range(const ActionInfo& info, const json& v, const std::string& ptr,
                        Action& out) {
  if (auto n = load_u32_member(v, ptr, "start")) out.a = *n;
  if (auto n = load_u32_member(v, ptr, info.keys[1])) out.b = *n;
  if (const json* f = member(v, "flags"))
    if (auto n = get_uint(*f, at(ptr, "flags"))) out.flags = *n;
}

void Loader::load_push(const json& v, const std::string& ptr, Action& out) {
  if (auto n = load_u32_member(v, ptr, "start")) out.a = *n;
  if (require(v, ptr, "bytes"))
    if (auto b = get_bytes(v["bytes"], at(ptr, "bytes"))) out.bytes.assign(b->begin(), b->end());
  if (const json* f = member(v, "flags"))
    if (auto n = get_uint(*f, at(ptr, "flags"))) out.flags = *n;
}

// redirect, map_update, map_delete: a sockmap or sockhash entry, and flags.
void Loader::load_map_key(const ActionInfo& info, const json& v, const std::string& ptr,
                          Action& out) {
  auto map = map_ref(v, ptr, {MapType::sockmap, MapType::sockhash});
  const bool has_key = require(v, ptr, "key");
  if (map) {
    out.map = *map;
    if (has_key) load_key(v["key"], at(ptr, "key"), *map, out.key);
  }
  const json* f = member(v, "flags");
  if (!f) return;
  const std::string fp = at(ptr, "flags");
  if (info.flags == ActionFlags::redirect) {
    load_redirect_flags(*f, fp, out);
  } else if (f->is_number_unsigned()) {
    out.flags = f->get<uint64_t>();
  } else if (auto s = get_enum(*f, fp, names_of(kUpdateFlags))) {
    out.flags = find_name(kUpdateFlags, *s)->value;
  }
}

// A list of names or numbers, or one of them; numbers other than
// BPF_F_INGRESS are kept and make the helper return SK_DROP.
void Loader::load_redirect_flags(const json& f, const std::string& fp, Action& out) {
  auto one = [&](const json& x, const std::string& p) {
    if (x.is_number_unsigned()) {
      out.flags |= x.get<uint64_t>();
    } else if (auto s = get_enum(x, p, names_of(kRedirectFlags))) {
      out.flags |= find_name(kRedirectFlags, *s)->value;
    }
  };
  if (f.is_array()) {
    for (size_t i = 0; i < f.size(); ++i) one(f[i], at(fp, std::to_string(i)));
  } else {
    one(f, fp);
  }
}

void Loader::load_storage_action(const json& v, const std::string& ptr, Action& out) {
  if (const json* c = member(v, "create")) {
    if (c->is_boolean())
      out.create = c->get<bool>();
    else
      error(at(ptr, "create"), "expected true or false");
  }
  auto map = map_ref(v, ptr, {MapType::sk_storage});
  if (!map) return;
  out.map = *map;
  for (const char* op : {"set", "add"}) {
    const json* w = member(v, op);
    if (!w) continue;
    const std::string wp = at(ptr, op);
    if (!expect_object(*w, wp)) continue;
    for (auto it = w->begin(); it != w->end(); ++it) {
      const std::string fp = at(wp, it.key());
      const ValueField* target = storage_field(*map, json(it.key()), fp);
      if (!target) continue;
      const bool add = op == std::string_view("add");
      if (auto sw = load_storage_write(add, *target, it.value(), fp))
        out.writes.push_back(std::move(*sw));
    }
  }
}

// One field of a storage action's "set" or "add".
std::optional<StorageWrite> Loader::load_storage_write(bool add, const ValueField& target,
                                                       const json& val, const std::string& fp) {
  StorageWrite sw;
  sw.add = add;
  sw.target = target;
  if (target.kind == ValueField::Kind::bytes) {
    if (add) {
      error(fp, "field " + quote(target.name) + " is bytes[N]: \"add\" needs an integer field");
      return std::nullopt;
    }
    auto b = get_bytes(val, fp);
    if (!b) return std::nullopt;
    if (b->size() > target.size) {
      error(fp, "expected at most " + std::to_string(target.size) + " bytes");
      return std::nullopt;
    }
    sw.bytes.assign(b->begin(), b->end());
    sw.bytes.resize(target.size, 0);
  } else if (val.is_string()) {
    const CtxFieldInfo* f = find_name(kCtxFieldInfo, val.get<std::string>());
    if (!f || f->literal == Literal::ip6 || !(f->programs & bit(cur_type_))) {
      error(fp, "expected an integer or a context field of " +
                    std::string(program_type_name(cur_type_)) + " programs");
      return std::nullopt;
    }
    sw.from_ctx = true;
    sw.field = f->field;
  } else if (auto n = get_int_bits(val, fp)) {
    sw.value = *n;
  } else {
    return std::nullopt;
  }
  return sw;
}

}  // namespace sockshim::policy
