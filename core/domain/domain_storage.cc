#include "core/domain/domain_storage.h"

#include "core/domain/domain.h"

namespace sockshim::domain {
namespace {

struct Hold {
  const StorageDef* def;
  uint64_t cookie;
  bool create;
  Holder holder;
  ValueRef* out;
};

struct Write {
  ValueRef v;
  const void* value;
  uint64_t flags;
};

}  // namespace

bool domain_storage_active() noexcept {
  Domain* d = own_domain();
  return d && !d->failed();
}

int domain_storage_hold(const StorageDef& def, uint64_t cookie, bool create,
                        ValueRef* out) noexcept {
  Domain* d = own_domain();
  if (!d) return -ENODEV;
  Hold h{&def, cookie, create, own_holder(), out};
  return d->run(
      [](Arena& a, void* ctx) {
        auto* h = static_cast<Hold*>(ctx);
        return storage_hold(a, *h->def, h->cookie, h->holder, h->create, h->out);
      },
      &h);
}

int domain_storage_write(ValueRef v, const void* value, uint64_t flags) noexcept {
  Domain* d = own_domain();
  if (!d) return -ENODEV;
  Write w{v, value, flags};
  return d->run(
      [](Arena&, void* ctx) {
        auto* w = static_cast<Write*>(ctx);
        return storage_write(w->v, w->value, w->flags);
      },
      &w);
}

int domain_storage_delete(ValueRef v) noexcept {
  Domain* d = own_domain();
  if (!d) return -ENODEV;
  return d->run([](Arena&, void* ctx) { return storage_delete(*static_cast<ValueRef*>(ctx)); }, &v);
}

void domain_storage_closed(uint64_t cookie) noexcept {
  Domain* d = own_domain();
  if (!d) return;
  Hold h{nullptr, cookie, false, own_holder(), nullptr};
  d->run(
      [](Arena& a, void* ctx) {
        auto* h = static_cast<Hold*>(ctx);
        return storage_holder_drop(a, h->cookie, h->holder.pid, h->holder.start_time);
      },
      &h);
}

}  // namespace sockshim::domain
