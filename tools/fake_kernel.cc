#include "tools/fake_kernel.h"

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>

#include "policy/vocabulary.h"

namespace sockshim::policy {

FakeKernel::FakeKernel(const Policy& policy, std::string self_name)
    : policy_(policy), maps_(policy.maps.size()) {
  sockets_.push_back(std::move(self_name));
}

uint32_t FakeKernel::add_socket(std::string name) {
  sockets_.push_back(std::move(name));
  return static_cast<uint32_t>(sockets_.size() - 1);
}

void FakeKernel::clear_map(uint32_t map) {
  maps_.at(map).auto_entries = false;
  maps_.at(map).entries.clear();
}

std::string format_key(const MapSpec& map, std::span<const uint8_t> key) {
  if (map.type == MapType::sockmap && key.size() == 4) {
    uint32_t idx;
    memcpy(&idx, key.data(), 4);
    return map.name + "[" + std::to_string(idx) + "]";
  }
  if (key.size() != map.key_size) return map.name + "[?]";
  std::string out = map.name + "{";
  const uint8_t* p = key.data();
  for (size_t i = 0; i < map.key.size(); ++i) {
    const KeyFieldInfo& f = info(map.key[i]);
    out += i ? ", " : "";
    out += f.name;
    out += "=";
    char text[INET6_ADDRSTRLEN] = "";
    if (f.literal == Literal::ip4) {
      inet_ntop(AF_INET, p, text, sizeof text);
      out += text;
    } else if (f.literal == Literal::ip6) {
      inet_ntop(AF_INET6, p, text, sizeof text);
      out += text;
    } else if (f.literal == Literal::u64) {
      uint64_t v;
      memcpy(&v, p, 8);
      out += std::to_string(v);
    } else {
      uint32_t v;
      memcpy(&v, p, 4);
      out += std::to_string(v);
    }
    p += f.size;
  }
  return out + "}";
}

int FakeKernel::redirect(uint32_t map, std::span<const uint8_t> key, uint64_t flags) {
  if (flags & ~BPF_F_INGRESS) return SK_DROP;
  const MapSpec& spec = policy_.maps.at(map);
  FakeMap& m = maps_.at(map);
  std::vector<uint8_t> k(key.begin(), key.end());
  auto it = m.entries.find(k);
  std::string target;
  if (it != m.entries.end()) {
    target = sockets_.at(it->second);
  } else if (m.auto_entries && (spec.type != MapType::sockmap || [&] {
               uint32_t idx;
               memcpy(&idx, key.data(), 4);
               return idx < spec.max_entries;
             }())) {
    target = format_key(spec, key);
  } else {
    return SK_DROP;
  }
  redirect_ = RedirectRecord{map, std::move(k), flags, std::move(target)};
  return SK_PASS;
}

std::vector<uint8_t>* FakeKernel::storage(uint32_t map) {
  auto& s = maps_.at(map).storage;
  return s ? &*s : nullptr;
}

uint8_t* FakeKernel::storage_get(uint32_t map, bool create) {
  auto& s = maps_.at(map).storage;
  if (!s) {
    if (!create) return nullptr;
    s.emplace(policy_.maps.at(map).value_size, 0);
  }
  return s->data();
}

long FakeKernel::storage_delete(uint32_t map) {
  auto& s = maps_.at(map).storage;
  if (!s) return -ENOENT;
  s.reset();
  return 0;
}

long FakeKernel::insert(uint32_t map, std::vector<uint8_t> key, uint32_t socket, uint64_t flags) {
  const MapSpec& spec = policy_.maps.at(map);
  FakeMap& m = maps_.at(map);
  if (m.auto_entries) clear_map(map);
  if (flags > BPF_EXIST) return -EINVAL;
  if (key.size() != spec.key_size) return -EINVAL;
  if (spec.type == MapType::sockmap) {
    uint32_t idx;
    memcpy(&idx, key.data(), 4);
    if (idx >= spec.max_entries) return -E2BIG;
  }
  const bool exists = m.entries.count(key) != 0;
  if (flags == BPF_NOEXIST && exists) return -EEXIST;
  if (flags == BPF_EXIST && !exists) return -ENOENT;
  if (spec.type == MapType::sockhash && !exists && m.entries.size() >= spec.max_entries)
    return -E2BIG;
  m.entries[std::move(key)] = socket;
  return 0;
}

long FakeKernel::map_update(uint32_t map, std::span<const uint8_t> key, uint64_t flags) {
  return insert(map, std::vector<uint8_t>(key.begin(), key.end()), 0, flags);
}

long FakeKernel::map_delete(uint32_t map, std::span<const uint8_t> key) {
  const MapSpec& spec = policy_.maps.at(map);
  FakeMap& m = maps_.at(map);
  if (m.auto_entries) clear_map(map);
  const size_t n = m.entries.erase(std::vector<uint8_t>(key.begin(), key.end()));
  if (n) return 0;
  return spec.type == MapType::sockmap ? -EINVAL : -ENOENT;
}

const MapSpec* FakeKernel::map_spec(uint32_t map) {
  return map < policy_.maps.size() ? &policy_.maps[map] : nullptr;
}

void FakeKernel::log(const Program& program, std::string_view text) {
  log_.push_back(program.name() + ": " + std::string(text));
}

}  // namespace sockshim::policy
