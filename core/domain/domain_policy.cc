#include "core/domain/domain_policy.h"

#include <atomic>

#include "core/domain/domain.h"

namespace sockshim::domain {
namespace {

// The process's pointer to its domain's record: it is never freed.
std::atomic<PolicyRec*> g_rec{nullptr};

}  // namespace

int domain_policy_generation(uint64_t* gen) noexcept {
  if (PolicyRec* r = g_rec.load(std::memory_order_acquire)) {
    *gen = r->gen.load(std::memory_order_acquire);
    return 0;
  }
  Domain* d = own_domain();
  if (!d) return -ENODEV;
  return d->run(
      [](Arena& a, void* ctx) {
        int err = 0;
        PolicyRec* r = policy_rec(a, true, &err);
        if (!r) return err;
        g_rec.store(r, std::memory_order_release);
        *static_cast<uint64_t*>(ctx) = r->gen.load(std::memory_order_acquire);
        return 0;
      },
      gen);
}

int domain_policy_publish(std::string_view path, std::string_view text, uint64_t* gen) noexcept {
  Domain* d = own_domain();
  if (!d) return -ENODEV;
  struct Args {
    std::string_view path, text;
    uint64_t* gen;
  } args{path, text, gen};
  return d->run(
      [](Arena& a, void* ctx) {
        auto* x = static_cast<Args*>(ctx);
        return policy_publish(a, x->path, x->text, x->gen);
      },
      &args);
}

int domain_policy_read(uint64_t* gen, std::string* path, std::string* text) noexcept {
  Domain* d = own_domain();
  if (!d) return -ENODEV;
  struct Args {
    uint64_t* gen;
    std::string *path, *text;
  } args{gen, path, text};
  return d->run(
      [](Arena& a, void* ctx) {
        auto* x = static_cast<Args*>(ctx);
        return policy_read(a, x->gen, x->path, x->text);
      },
      &args);
}

}  // namespace sockshim::domain
