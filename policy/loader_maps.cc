// The "maps" section: sockmap, sockhash and sk_storage definitions, checked
// as the kernel's map_alloc_check would refuse them.
#include <cstdio>

#include "policy/loader.h"

namespace sockshim::policy {

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
    type = get_enum(v["type"], at(ptr, "type"),
                    names_of(kMapTypes, [](const MapTypeInfo& i) { return !i.policy; }));
  if (!type) {
    broken_maps_.insert(name);
    return;
  }
  spec.type = find_name(kMapTypes, *type)->type;
  if (spec.type == MapType::sk_storage)
    load_storage_map(v, ptr, spec, errors_before);
  else
    load_sock_map(v, ptr, spec);
  if (errors_.size() != errors_before) broken_maps_.insert(name);
  policy_->maps.push_back(std::move(spec));
}

void Loader::not_for(const json& v, const std::string& ptr, MapType t, std::string_view key,
                     std::string_view why) {
  if (v.contains(key))
    error_key(at(ptr, key),
              quote(key) + " is not allowed for a " + map_type_name(t) + std::string(why));
}

void Loader::load_storage_map(const json& v, const std::string& ptr, MapSpec& spec,
                              size_t errors_before) {
  spec.key_size = 4;
  if (const json* me = member(v, "max_entries")) {
    if (!(me->is_number_integer() && me->get<int64_t>() == 0))
      error(at(ptr, "max_entries"), "must be 0 or absent for sk_storage (EINVAL)");
  }
  not_for(v, ptr, spec.type, "key", " (its key is the socket)");
  not_for(v, ptr, spec.type, "value_size", " (the value layout sets it)");
  if (require(v, ptr, "flags"))
    load_storage_flags(v["flags"], at(ptr, "flags"), spec, errors_before);
  if (require(v, ptr, "value")) load_value_layout(v["value"], at(ptr, "value"), spec);
}

// BPF_F_NO_PREALLOC is required once the map has no other error.
void Loader::load_storage_flags(const json& f, const std::string& fp, MapSpec& spec,
                                size_t errors_before) {
  if (!expect_array(f, fp)) return;
  for (size_t i = 0; i < f.size(); ++i)
    if (auto n = get_enum(f[i], at(fp, std::to_string(i)), names_of(kStorageMapFlags)))
      spec.flags |= static_cast<uint32_t>(find_name(kStorageMapFlags, *n)->value);
  if (errors_.size() == errors_before && !(spec.flags & BPF_F_NO_PREALLOC))
    error(fp, "must contain \"BPF_F_NO_PREALLOC\" (EINVAL)");
}

std::optional<ValueField> Loader::load_value_field(const std::string& name, const json& v,
                                                   const std::string& fp) {
  auto s = get_string(v, fp);
  if (!s) return std::nullopt;
  ValueField f;
  f.name = name;
  const ValueKindInfo* kind = find_name(kValueKinds, *s);
  unsigned long n = 0;
  int used = 0;
  if (kind && kind->kind != ValueField::Kind::bytes) {
    f.kind = kind->kind;
    f.size = kind->size;
    return f;
  }
  if (sscanf(s->c_str(), "bytes[%lu]%n", &n, &used) == 1 &&
      static_cast<size_t>(used) == s->size() && n > 0 && n <= 65535 &&
      s->find_first_of("+- ") == std::string::npos) {
    f.kind = ValueField::Kind::bytes;
    f.size = static_cast<uint32_t>(n);
    return f;
  }
  error(fp, "expected " + quoted_or(names_of(kValueKinds)) + " (N from 1 to 65535)");
  return std::nullopt;
}

void Loader::load_value_layout(const json& val, const std::string& vp, MapSpec& spec) {
  if (!expect_object(val, vp)) return;
  uint32_t offset = 0;
  for (auto it = val.begin(); it != val.end(); ++it) {
    auto f = load_value_field(it.key(), it.value(), at(vp, it.key()));
    if (!f) continue;
    f->offset = offset;
    offset += f->size;
    spec.value.push_back(std::move(*f));
  }
  spec.value_size = offset;
  if (val.empty()) error(vp, "expected at least one field (value_size 0 is EINVAL)");
  // BPF_LOCAL_STORAGE_MAX_VALUE_SIZE is a little under U16_MAX.
  if (offset > 65535 - 16)
    error(vp, "value is " + std::to_string(offset) + " bytes: more than 65519 (E2BIG)");
}

void Loader::load_sock_map(const json& v, const std::string& ptr, MapSpec& spec) {
  if (require(v, ptr, "max_entries"))
    load_max_entries(v["max_entries"], at(ptr, "max_entries"), spec);
  if (const json* vs = member(v, "value_size")) {
    if (vs->is_number_integer() && (vs->get<int64_t>() == 4 || vs->get<int64_t>() == 8))
      spec.value_size = static_cast<uint32_t>(vs->get<int64_t>());
    else
      error(at(ptr, "value_size"), "expected 4 or 8 (EINVAL)");
  }
  not_for(v, ptr, spec.type, "value", " (its value is a socket)");
  not_for(v, ptr, spec.type, "flags", "");
  if (spec.type == MapType::sockmap) {
    not_for(v, ptr, spec.type, "key", " (its key is a u32 index)");
    spec.key_size = 4;
  } else if (require(v, ptr, "key")) {
    load_key_layout(v["key"], at(ptr, "key"), spec);
  }
}

void Loader::load_max_entries(const json& me, const std::string& mp, MapSpec& spec) {
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

void Loader::load_key_layout(const json& k, const std::string& kp, MapSpec& spec) {
  if (!expect_array(k, kp)) return;
  if (k.empty()) error(kp, "expected at least one key field (key_size 0 is EINVAL)");
  uint32_t size = 0;
  for (size_t i = 0; i < k.size(); ++i) {
    const KeyFieldInfo* f =
        k[i].is_string() ? find_name(kKeyFields, k[i].get<std::string>()) : nullptr;
    if (!f) {
      error(at(kp, std::to_string(i)), one_of(names_of(kKeyFields)));
      continue;
    }
    spec.key.push_back(f->field);
    size += f->size;
  }
  spec.key_size = size;
  if (size > kMaxKeySize)
    error(kp, "key is " + std::to_string(size) + " bytes: more than 512 (E2BIG)");
}

}  // namespace sockshim::policy
