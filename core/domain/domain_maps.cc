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
  MapGenStep step;
};

uint32_t gen_of(Arena& a, const MapDef& def) noexcept {
  int err = 0;
  const uint32_t* w = shared_map_gen_word(a, def, &err);
  return w ? *w : 0;
}

// -ENOMEM and -ENOSPC leave the domain's table short of this socket; said once.
void note_short(Domain* d, int r, const char* what) noexcept {
  static std::atomic<bool> said{false};
  if ((r == -ENOMEM || r == -ENOSPC || r == -EINVAL) && !said.exchange(true))
    log::warn("domain {}: {} not recorded in the shared maps: {} (further ones not said)", d->key(),
              what, strerror(-r));
}

}  // namespace

MapGenStep domain_map_update(const MapDef& def, const void* key, uint64_t cookie, int fd) noexcept {
  Domain* d = own_domain();
  if (!d) return {};
  Holder h = own_holder();
  h.fd = fd;
  Update u{&def, key, cookie, h, {}};
  int r = d->run(
      [](Arena& a, void* ctx) {
        auto* u = static_cast<Update*>(ctx);
        u->step.before = gen_of(a, *u->def);
        int rc = shared_map_update(a, *u->def, u->key, u->cookie, u->holder);
        u->step.after = gen_of(a, *u->def);
        return rc;
      },
      &u);
  note_short(d, r, "a socket");
  return u.step;
}

MapGenStep domain_map_delete(const MapDef& def, const void* key, uint64_t cookie) noexcept {
  Domain* d = own_domain();
  if (!d) return {};
  Update u{&def, key, cookie, {}, {}};
  d->run(
      [](Arena& a, void* ctx) {
        auto* u = static_cast<Update*>(ctx);
        u->step.before = gen_of(a, *u->def);
        int r = shared_map_delete(a, *u->def, u->key, u->cookie);
        u->step.after = gen_of(a, *u->def);
        return r == -ENOENT ? 0 : r;
      },
      &u);
  return u.step;
}

bool domain_map_lookup(const MapDef& def, const void* key, DomainEntry* out) noexcept {
  Domain* d = own_domain();
  *out = {};
  if (!d) return false;
  struct Lookup {
    const MapDef* def;
    const void* key;
    DomainEntry* out;
  } l{&def, key, out};
  int r = d->run(
      [](Arena& a, void* ctx) {
        auto* l = static_cast<Lookup*>(ctx);
        int err = 0;
        l->out->gen_word = shared_map_gen_word(a, *l->def, &err);
        if (!l->out->gen_word) return err;
        l->out->gen = *l->out->gen_word;
        l->out->cookie = shared_map_lookup(a, *l->def, l->key, &err);
        return err;
      },
      &l);
  return r == 0;
}

std::vector<HeldEntry> domain_held_entries() noexcept {
  Domain* d = own_domain();
  std::vector<HeldEntry> out;
  if (!d) return out;
  struct Held {
    Holder self;
    std::vector<HeldEntry>* out;
  } h{own_holder(), &out};
  int r = d->run(
      [](Arena& a, void* ctx) {
        auto* h = static_cast<Held*>(ctx);
        return shared_entries_held(a, h->self.pid, h->self.start_time, h->out);
      },
      &h);
  if (r < 0) out.clear();
  return out;
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
