#include "core/maps/map_table.h"

#include <errno.h>

#include <mutex>
#include <new>
#include <utility>

#include "core/maps/map_create.h"
#include "core/maps/sk_storage.h"
#include "core/maps/sock_hash.h"
#include "core/maps/sock_map.h"
#include "core/psock/psock.h"
#include "policy/policy.h"

namespace sockshim {

namespace {

struct Installed {
  std::mutex lock;
  std::shared_ptr<MapTable> table;
};
Installed& installed() noexcept {
  static Installed* i = new Installed;  // leaked: hooks run during exit
  return *i;
}

bool same_definition(const policy::MapSpec& a, const policy::MapSpec& b) {
  auto same_value = [](const policy::ValueField& x, const policy::ValueField& y) {
    return x.name == y.name && x.kind == y.kind && x.size == y.size && x.offset == y.offset;
  };
  return a.name == b.name && a.type == b.type && a.max_entries == b.max_entries &&
         a.value_size == b.value_size && a.key == b.key && a.key_size == b.key_size &&
         a.flags == b.flags &&
         std::equal(a.value.begin(), a.value.end(), b.value.begin(), b.value.end(), same_value);
}

// A kept map starts the new policy with none of the old programs attached.
void detach_all(SockMapBase& m) noexcept {
  MapProgs p = m.progs();
  if (p.msg_parser) m.prog_detach(p.msg_parser, policy::AttachType::sk_msg_verdict);
  if (p.stream_parser) m.prog_detach(p.stream_parser, policy::AttachType::sk_skb_stream_parser);
  if (p.stream_verdict) m.prog_detach(p.stream_verdict, policy::AttachType::sk_skb_stream_verdict);
  if (p.skb_verdict) m.prog_detach(p.skb_verdict, policy::AttachType::sk_skb_verdict);
}

}  // namespace

int MapTable::create(const std::vector<policy::MapSpec>& specs,
                     const std::vector<MapAttachment>& attachments, std::unique_ptr<MapTable>* out,
                     std::string* error, const MapTable* keep) {
  std::unique_ptr<MapTable> t(new (std::nothrow) MapTable);
  if (!t) return -ENOMEM;
  for (const policy::MapSpec& spec : specs) {
    if (int r = map_create_check(spec)) {
      *error = "map '" + spec.name + "': invalid definition";
      return r;
    }
    if (t->by_name_.count(spec.name)) {
      *error = "map '" + spec.name + "': defined twice";
      return -EEXIST;
    }
    std::shared_ptr<BpfMap> m;
    if (keep) {
      auto it = keep->by_name_.find(spec.name);
      if (it != keep->by_name_.end() && same_definition(it->second->spec(), spec)) m = it->second;
    }
    if (!m) {
      if (int r = map_create(spec, -1, &m)) {
        *error = "map '" + spec.name + "': out of memory";
        return r;
      }
      // The policy's socket maps and sk_storage values are the domain's (bpf()
      // ones stay the process's).
      if (auto* sm = dynamic_cast<SockMapBase*>(m.get())) sm->share_in_domain();
      if (auto* st = dynamic_cast<SkStorage*>(m.get())) st->share_in_domain();
    }
    t->order_.push_back(m.get());
    t->by_name_.emplace(spec.name, std::move(m));
  }
  // Checked against fresh copies first, so a refused reload leaves the kept
  // maps' programs as they were.
  if (keep) {
    std::unique_ptr<MapTable> trial;
    if (int r = create(specs, attachments, &trial, error)) return r;
    for (BpfMap* m : t->order_)
      if (auto* sm = t->find_sock_map(m->name()); sm && keep->find(m->name()) == m) detach_all(*sm);
  }
  for (const MapAttachment& a : attachments)
    if (int r = t->prog_attach(a.prog, a.map, a.type)) {
      *error = std::string("attach ") + policy::attach_type_name(a.type) + " to map '" + a.map +
               "' failed";
      return r;
    }
  *out = std::move(t);
  return 0;
}

MapTable::~MapTable() {
  // Free in reverse creation order; each map lets go of its sockets.
  for (auto it = order_.rbegin(); it != order_.rend(); ++it)
    by_name_.find((*it)->name())->second.reset();
}

BpfMap* MapTable::find(std::string_view name) const noexcept {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second.get();
}

SockMapBase* MapTable::find_sock_map(std::string_view name) const noexcept {
  BpfMap* m = find(name);
  bool sock =
      m && (m->type() == policy::MapType::sockmap || m->type() == policy::MapType::sockhash);
  return sock ? static_cast<SockMapBase*>(m) : nullptr;
}

SkStorage* MapTable::find_sk_storage(std::string_view name) const noexcept {
  BpfMap* m = find(name);
  return m && m->type() == policy::MapType::sk_storage ? static_cast<SkStorage*>(m) : nullptr;
}

int MapTable::prog_attach(const policy::Program* prog, std::string_view map,
                          policy::AttachType type) noexcept {
  BpfMap* m = find(map);
  if (!m) return -EBADF;
  SockMapBase* sm = find_sock_map(map);
  if (!sm) return -EOPNOTSUPP;
  return sm->prog_attach(prog, type);
}

int MapTable::prog_detach(const policy::Program* prog, std::string_view map,
                          policy::AttachType type) noexcept {
  BpfMap* m = find(map);
  if (!m) return -EBADF;
  SockMapBase* sm = find_sock_map(map);
  if (!sm) return -EOPNOTSUPP;
  return sm->prog_detach(prog, type);
}

std::shared_ptr<MapTable> current_maps() noexcept {
  Installed& i = installed();
  std::lock_guard g(i.lock);
  return i.table;
}

void install_maps(std::shared_ptr<MapTable> table) noexcept {
  Installed& i = installed();
  std::shared_ptr<MapTable> old;
  {
    std::lock_guard g(i.lock);
    old = std::exchange(i.table, std::move(table));
  }
  // old is released here, outside the lock: freeing maps takes socket locks.
}

void maps_after_fork_child() noexcept {
  Installed& i = installed();
  new (&i.lock) std::mutex();
  SockHash::new_fork_epoch();
  if (i.table)
    for (BpfMap* m : i.table->maps()) m->after_fork_child();
  sk_storage_after_fork_child();
  psock_after_fork_child();
}

}  // namespace sockshim
