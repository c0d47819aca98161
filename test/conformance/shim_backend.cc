// The side under test: maps built by core (until the policy loader builds them,
// MapTable::create stands in for it) and installed as the process's table;
// every map operation goes through the C API of sockshim.h, as a program
// running under the shim would call it.
#include "core/map_table.h"
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
    std::vector<sockshim::policy::MapSpec> specs;
    for (const MapDef& d : maps) {
      sockshim::policy::MapSpec s{};
      s.name = d.name;
      s.type = d.type;
      s.max_entries = d.max_entries;
      s.key_size = d.key_size;
      s.value_size = d.value_size;
      if (d.type == MapType::sk_storage) s.flags = sockshim::policy::BPF_F_NO_PREALLOC;
      specs.push_back(std::move(s));
    }
    std::unique_ptr<sockshim::MapTable> t;
    std::string err;
    if (int r = sockshim::MapTable::create(specs, {}, &t, &err)) return r;
    table_ = std::shared_ptr<sockshim::MapTable>(std::move(t));
    sockshim::install_maps(table_);
    return 0;
  }

  void free_maps() override {
    table_.reset();
    sockshim::install_maps(nullptr);
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
