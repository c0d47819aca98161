#include "core/loaded_policy.h"

#include <atomic>

#include "core/log.h"

namespace sockshim {
namespace {

// Leaked on purpose: hooks may run while the process exits.
std::atomic<std::shared_ptr<const LoadedPolicy>>& slot() noexcept {
  static auto* s = new std::atomic<std::shared_ptr<const LoadedPolicy>>();
  return *s;
}

}  // namespace

std::shared_ptr<const LoadedPolicy> current_policy() noexcept {
  return slot().load(std::memory_order_acquire);
}

bool load_policy(const std::string& path, std::vector<std::string>* errors) noexcept {
  try {
    policy::LoadResult loaded = policy::load_policy_file(path);
    if (!loaded.ok()) {
      for (const policy::LoadError& e : loaded.errors) errors->push_back(e.format(path));
      return false;
    }
    auto lp = std::make_shared<LoadedPolicy>();
    lp->path = path;
    lp->policy = std::move(loaded.policy);
    const policy::Policy& p = *lp->policy;

    std::vector<MapAttachment> attachments;
    for (const policy::Attachment& a : p.attach)
      attachments.push_back({a.program, p.maps[a.map].name, a.type});
    std::unique_ptr<MapTable> table;
    std::string why;
    if (int err = MapTable::create(p.maps, attachments, &table, &why); err != 0) {
      errors->push_back(path + ": " + why);
      return false;
    }
    lp->maps = std::move(table);
    for (const policy::MapSpec& spec : p.maps)
      lp->map_by_index.push_back(lp->maps->find(spec.name));

    install_maps(lp->maps);
    slot().store(std::move(lp), std::memory_order_release);
    log::info("policy {} loaded: {} maps, {} programs", path, p.maps.size(), p.programs.size());
    return true;
  } catch (const std::exception& e) {
    errors->push_back(path + ": " + e.what());
    return false;
  }
}

}  // namespace sockshim
