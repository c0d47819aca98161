#include "core/domain/domain_maps.h"

#include <atomic>
#include <cstring>

#include "core/domain/domain.h"
#include "core/domain/members.h"
#include "core/sock/log.h"

namespace sockshim::domain {
namespace {

struct Update {
  const MapDef* def;
  const void* key;
  uint64_t cookie;
  Holder holder;
};

// -ENOMEM and -ENOSPC leave the domain's table short of this socket; said once.
void note_short(Domain* d, int r, const char* what) noexcept {
  static std::atomic<bool> said{false};
  if ((r == -ENOMEM || r == -ENOSPC || r == -EINVAL) && !said.exchange(true))
    log::warn("domain {}: {} not recorded in the shared maps: {} (further ones not said)", d->key(),
              what, strerror(-r));
}

}  // namespace

void domain_map_update(const MapDef& def, const void* key, uint64_t cookie, int fd) noexcept {
  Domain* d = own_domain();
  if (!d) return;
  Holder h = own_holder();
  h.fd = fd;
  Update u{&def, key, cookie, h};
  int r = d->run(
      [](Arena& a, void* ctx) {
        auto* u = static_cast<Update*>(ctx);
        return shared_map_update(a, *u->def, u->key, u->cookie, u->holder);
      },
      &u);
  note_short(d, r, "a socket");
}

void domain_map_delete(const MapDef& def, const void* key, uint64_t cookie) noexcept {
  Domain* d = own_domain();
  if (!d) return;
  Update u{&def, key, cookie, {}};
  d->run(
      [](Arena& a, void* ctx) {
        auto* u = static_cast<Update*>(ctx);
        int r = shared_map_delete(a, *u->def, u->key, u->cookie);
        return r == -ENOENT ? 0 : r;
      },
      &u);
}

uint64_t domain_map_lookup(const MapDef& def, const void* key) noexcept {
  Domain* d = own_domain();
  if (!d || d->failed()) return 0;
  Update u{&def, key, 0, {}};
  int r = d->run(
      [](Arena& a, void* ctx) {
        auto* u = static_cast<Update*>(ctx);
        int err = 0;
        u->cookie = shared_map_lookup(a, *u->def, u->key, &err);
        return err;
      },
      &u);
  return r == 0 ? u.cookie : 0;
}

void domain_sock_closed(uint64_t cookie) noexcept {
  Domain* d = own_domain();
  if (!d) return;
  Update u{nullptr, nullptr, cookie, own_holder()};
  d->run(
      [](Arena& a, void* ctx) {
        auto* u = static_cast<Update*>(ctx);
        return sock_holder_drop(a, u->cookie, u->holder.pid, u->holder.start_time);
      },
      &u);
}

bool domain_maps_read(std::vector<SharedMap>* out, std::string* key, std::string* error) {
  Domain* d = own_domain();
  out->clear();
  if (!d) return true;
  *key = d->key();
  int r = d->run(
      [](Arena& a, void* ctx) {
        if (int rc = members_reap(a); rc < 0) return rc;
        return shared_maps_read(a, static_cast<std::vector<SharedMap>*>(ctx));
      },
      out);
  if (r == 0) return true;
  *error = r == -EUCLEAN || r == -ETIMEDOUT ? d->why() : strerror(-r);
  return false;
}

}  // namespace sockshim::domain
