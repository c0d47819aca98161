#include "policy/object_file.h"

#include <atomic>

namespace sockshim::policy {

namespace {
std::atomic<ObjectLoader> g_object_loader{nullptr};
}  // namespace

void set_object_loader(ObjectLoader loader) noexcept {
  g_object_loader.store(loader, std::memory_order_release);
}

ObjectLoader object_loader() noexcept {
  return g_object_loader.load(std::memory_order_acquire);
}

}  // namespace sockshim::policy
