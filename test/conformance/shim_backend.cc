// The side under test: each scenario's maps come from a policy file, loaded as
// SOCKSHIM_POLICY is at start-up; every map operation goes through the C API
// of sockshim.h, as a program running under the shim would call it. Program
// attach and detach, which a policy file cannot do after loading, go to the
// loaded map table directly.
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "core/maps/loaded_policy.h"
#include "core/maps/map_table.h"
#include "shim/sockshim.h"
#include "test/conformance/conformance.h"

namespace conformance {
namespace {

// Distinct program identities: core only stores and compares them.
const sockshim::policy::Program* program(Prog p) {
  static char ids[8];
  return reinterpret_cast<const sockshim::policy::Program*>(&ids[static_cast<int>(p)]);
}

class ShimBackend final : public Backend {
 public:
  ~ShimBackend() override { free_maps(); }
  const char* name() const override { return "sockshim"; }

  int create_maps(const std::vector<MapDef>& maps) override {
    // Key and value sizes become layouts of u32 fields and a bytes[N] value.
    std::string json = "{\"version\": 1, \"maps\": {";
    for (size_t i = 0; i < maps.size(); ++i) {
      const MapDef& d = maps[i];
      json += (i ? ", \"" : "\"") + d.name + "\": {";
      if (d.type == MapType::sk_storage) {
        json +=
            "\"type\": \"sk_storage\", \"flags\": [\"BPF_F_NO_PREALLOC\"], "
            "\"value\": {\"v\": \"bytes[" +
            std::to_string(d.value_size) + "]\"}}";
        continue;
      }
      json += std::string("\"type\": \"") + (d.type == MapType::sockmap ? "sockmap" : "sockhash") +
              "\", \"max_entries\": " + std::to_string(d.max_entries) +
              ", \"value_size\": " + std::to_string(d.value_size);
      if (d.type == MapType::sockhash) {
        json += ", \"key\": [";
        for (uint32_t k = 0; k < d.key_size / 4; ++k) json += k ? ", \"u32\"" : "\"u32\"";
        json += "]";
      }
      json += "}";
    }
    json += "}}\n";
    char path[] = "/tmp/sockshim-conformance-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return -errno;
    close(fd);
    std::ofstream(path) << json;
    std::vector<std::string> errors;
    bool ok = sockshim::load_policy(path, &errors);
    unlink(path);
    for (const std::string& e : errors) fprintf(stderr, "policy: %s\n", e.c_str());
    if (!ok) return -EINVAL;
    table_ = sockshim::current_maps();
    return 0;
  }

  void free_maps() override {
    table_.reset();
    sockshim::unload_policy();
  }

  int update(const std::string& map, const void* key, const void* value, uint64_t flags) override {
    return sockshim_map_update_elem(map.c_str(), key, value, flags);
  }
  int lookup(const std::string& map, const void* key, void* value) override {
    return sockshim_map_lookup_elem(map.c_str(), key, value);
  }
  int del(const std::string& map, const void* key) override {
    return sockshim_map_delete_elem(map.c_str(), key);
  }
  int next_key(const std::string& map, const void* key, void* next) override {
    return sockshim_map_get_next_key(map.c_str(), key, next);
  }
  int attach(Prog p, const std::string& map, AttachType t) override {
    return table_->prog_attach(program(p), map, t);
  }
  int detach(Prog p, const std::string& map, AttachType t) override {
    return table_->prog_detach(program(p), map, t);
  }

 private:
  std::shared_ptr<sockshim::MapTable> table_;
};

}  // namespace

std::unique_ptr<Backend> make_shim_backend() {
  return std::make_unique<ShimBackend>();
}

}  // namespace conformance
