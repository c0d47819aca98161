#include "core/maps/loaded_policy.h"

#include <errno.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <new>
#include <utility>

#include "core/domain/domain_policy.h"
#include "core/maps/sock_map_base.h"
#include "core/psock/psock.h"
#include "core/sock/log.h"
#include "core/sock/registry.h"

namespace sockshim {
namespace {

// The current policy. The owning pointer changes under a plain mutex that a
// fork child can re-create (a std::atomic<std::shared_ptr> hides its lock, and
// a fork while another thread held it left the child spinning forever). Readers
// use the raw pointer alone: an installed policy is never freed while sockets
// may run its programs (a reload retires the old one). Leaked on purpose:
// hooks may run during exit.
struct Slot {
  std::mutex lock;
  std::shared_ptr<const LoadedPolicy> policy;
  std::atomic<const LoadedPolicy*> raw{nullptr};
};
Slot& slot() noexcept {
  static Slot* s = new Slot;
  return *s;
}

// Installs lp and returns the policy it replaces.
std::shared_ptr<const LoadedPolicy> store(std::shared_ptr<const LoadedPolicy> lp) noexcept {
  Slot& s = slot();
  std::lock_guard g(s.lock);
  s.raw.store(lp.get(), std::memory_order_release);
  return std::exchange(s.policy, std::move(lp));
}

// A pointer to lp that holds no reference (and costs no atomic operation to
// copy): lp outlives it, being current or retired.
std::shared_ptr<const LoadedPolicy> view(const LoadedPolicy* lp) noexcept {
  return std::shared_ptr<const LoadedPolicy>(std::shared_ptr<const LoadedPolicy>(), lp);
}

// Replaced policies stay allocated: a psock may be running one of their
// programs right now, and programs are small.
std::vector<std::shared_ptr<const LoadedPolicy>>& retired() noexcept {
  static auto* r = new std::vector<std::shared_ptr<const LoadedPolicy>>;
  return *r;
}
// Recursive: a reload builds the new policy under it, and loading its
// "object" programs runs bpf(), which keeps their policies (keep_program_policy).
std::recursive_mutex g_reload_lock;
// The domain's published policy generation this process runs (0: its own
// file's, nothing published yet). Changed under g_reload_lock.
std::atomic<uint64_t> g_domain_gen{0};

// Loads path and builds its maps (sharing keep's unchanged ones); null and
// *errors on failure.
std::shared_ptr<LoadedPolicy> build(const std::string& path, std::vector<std::string>* errors,
                                    const MapTable* keep, const std::string* text = nullptr) {
  policy::LoadResult loaded =
      text ? policy::load_policy_text(*text) : policy::load_policy_file(path);
  if (!loaded.ok()) {
    for (const policy::LoadError& e : loaded.errors) errors->push_back(e.format(path));
    return nullptr;
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
  if (MapTable::create(p.maps, attachments, &table, &why, keep) != 0) {
    errors->push_back(path + ": " + why);
    return nullptr;
  }
  lp->maps = std::move(table);
  for (const policy::MapSpec& spec : p.maps) lp->map_by_index.push_back(lp->maps->find(spec.name));
  return lp;
}

// Every psock runs the programs of the maps it is in now (after a reload). One
// left without a verdict stops its receive engine, as a map delete would: its
// reader reads the socket itself again (and wakes if it waits).
void refresh_psock_programs() noexcept {
  for (int fd = 0, top = registry::high_water(); fd <= top; ++fd) {
    SocketRef sk = registry::get(fd);
    if (!sk || registry::is_internal(sk.get())) continue;
    PsockRef p = psock_get(sk.get());
    if (!p) continue;
    MapProgs progs;
    {
      std::lock_guard g(p->link_lock);
      for (const PsockLink& l : p->links) {
        MapProgs m = l.map->progs();
        if (!progs.msg_parser) progs.msg_parser = m.msg_parser;
        if (!progs.stream_parser) progs.stream_parser = m.stream_parser;
        if (!progs.stream_verdict) progs.stream_verdict = m.stream_verdict;
        if (!progs.skb_verdict) progs.skb_verdict = m.skb_verdict;
      }
    }
    p->progs.msg_parser.store(progs.msg_parser, std::memory_order_release);
    p->progs.stream_parser.store(progs.stream_parser, std::memory_order_release);
    p->progs.stream_verdict.store(progs.stream_verdict, std::memory_order_release);
    p->progs.skb_verdict.store(progs.skb_verdict, std::memory_order_release);
    if (progs.stream_verdict || progs.skb_verdict) continue;
    bool stop = false;
    {
      std::lock_guard g(p->link_lock);
      stop = p->rx_hook != RxHook::none;
      p->rx_hook = RxHook::none;
    }
    if (!stop) continue;
    const PsockOps& ops = psock_ops();
    if (ops.stop_rx) ops.stop_rx(p.get());
    if (ops.poll_link) ops.poll_link(sk.get());
  }
}

// A map the new policy does not keep lets go of its sockets now. The map
// object itself stays (with its retired policy): a run of an old program that
// is still going may look a key up in it, and finds nothing.
void clear_map(BpfMap* m) noexcept {
  auto* sm = dynamic_cast<SockMapBase*>(m);
  if (!sm) return;
  if (m->type() == policy::MapType::sockmap) {
    for (uint32_t i = 0; i < sm->max_entries() && sm->count() > 0; ++i) sm->delete_sys(&i);
    return;
  }
  unsigned char key[kMaxBpfStack];
  while (sm->get_next_key_sys(nullptr, key) == 0) sm->delete_sys(key);
}

// old was replaced by now: the maps now does not share let go of their sockets
// (*kept, if given, names the shared ones) and old stays allocated. Under
// g_reload_lock.
void retire(std::shared_ptr<const LoadedPolicy> old, const LoadedPolicy& now,
            std::vector<std::string>* kept) {
  for (BpfMap* m : old->maps->maps())
    if (now.maps->find(m->name()) != m)
      clear_map(m);
    else if (kept)
      kept->push_back(m->name());
  retired().push_back(std::move(old));
}

}  // namespace

std::shared_ptr<const LoadedPolicy> policy_of(const policy::Program* prog) noexcept {
  const LoadedPolicy* lp = slot().raw.load(std::memory_order_acquire);
  auto owns = [prog](const LoadedPolicy& l) {
    for (const auto& p : l.policy->programs)
      if (p.get() == prog) return true;
    return false;
  };
  if (lp && owns(*lp)) return view(lp);
  std::lock_guard g(g_reload_lock);
  for (const auto& old : retired())
    if (owns(*old)) return view(old.get());
  return view(lp);
}

void keep_program_policy(std::shared_ptr<const LoadedPolicy> lp) noexcept {
  std::lock_guard g(g_reload_lock);
  for (const auto& kept : retired())
    if (kept == lp) return;
  try {
    retired().push_back(std::move(lp));
  } catch (const std::bad_alloc&) {
    // Still held by its bpf() object: it lives as long as that does.
  }
}

std::shared_ptr<const LoadedPolicy> current_policy() noexcept {
  return view(slot().raw.load(std::memory_order_acquire));
}

void loaded_policy_after_fork_child() noexcept {
  new (&slot().lock) std::mutex();
  new (&g_reload_lock) std::recursive_mutex();
}

bool load_policy(const std::string& path, std::vector<std::string>* errors) noexcept {
  try {
    std::shared_ptr<LoadedPolicy> lp = build(path, errors, nullptr);
    if (!lp) return false;
    log::info("policy {} loaded: {} maps, {} programs", path, lp->policy->maps.size(),
              lp->policy->programs.size());
    install_maps(lp->maps);
    std::lock_guard g(g_reload_lock);
    std::shared_ptr<const LoadedPolicy> old = store(lp);
    if (old) retire(std::move(old), *lp, nullptr);
    return true;
  } catch (const std::exception& e) {
    errors->push_back(path + ": " + e.what());
    return false;
  }
}

void unload_policy() noexcept {
  install_maps(nullptr);
  store(nullptr);
}

namespace {

// Builds lp from path (or text) and swaps it in; with publish, first makes
// it the domain's policy (refused, nothing changes, if the domain cannot
// take it). Under g_reload_lock.
bool swap_in(const std::string& path, const std::string* text, bool publish,
             std::vector<std::string>* errors, std::vector<std::string>* kept) {
  const LoadedPolicy* now = slot().raw.load(std::memory_order_acquire);
  std::shared_ptr<LoadedPolicy> lp = build(path, errors, now ? now->maps.get() : nullptr, text);
  if (!lp) return false;
  uint64_t gen = 0;
  if (publish) {
    int r = domain::domain_policy_publish(path, *text, &gen);
    if (r < 0 && r != -ENODEV) {
      errors->push_back(path + ": the domain cannot take it: " + strerror(-r));
      return false;
    }
  } else {
    gen = g_domain_gen.load(std::memory_order_relaxed);
  }
  install_maps(lp->maps);
  if (std::shared_ptr<const LoadedPolicy> old = store(lp)) retire(std::move(old), *lp, kept);
  refresh_psock_programs();
  g_domain_gen.store(gen, std::memory_order_release);
  log::info("policy {} reloaded: {} maps ({} kept), {} programs", path, lp->policy->maps.size(),
            kept->size(), lp->policy->programs.size());
  return true;
}

}  // namespace

bool reload_policy(const std::string& path, std::vector<std::string>* errors,
                   std::vector<std::string>* kept, uint64_t* domain_gen) noexcept {
  try {
    std::string text;
    if (std::string why = policy::read_policy_file(path, &text); !why.empty()) {
      errors->push_back(policy::read_error(path, why));
      return false;
    }
    std::lock_guard g(g_reload_lock);
    if (!swap_in(path, &text, true, errors, kept)) return false;
    if (domain_gen) *domain_gen = g_domain_gen.load(std::memory_order_relaxed);
    return true;
  } catch (const std::exception& e) {
    errors->push_back(path + ": " + e.what());
    return false;
  }
}

bool adopt_domain_policy(std::vector<std::string>* errors, std::vector<std::string>* kept,
                         uint64_t* domain_gen) noexcept {
  try {
    std::lock_guard g(g_reload_lock);
    uint64_t gen = 0;
    std::string path, text;
    if (int r = domain::domain_policy_read(&gen, &path, &text); r < 0) {
      if (r != -ENODEV) errors->push_back(std::string("the domain's policy: ") + strerror(-r));
      return r == -ENODEV;
    }
    if (domain_gen) *domain_gen = gen;
    if (gen == 0 || gen == g_domain_gen.load(std::memory_order_relaxed)) return true;
    std::vector<std::string> ignored;
    if (!swap_in(path, &text, false, errors, kept ? kept : &ignored)) return false;
    g_domain_gen.store(gen, std::memory_order_release);
    return true;
  } catch (const std::exception& e) {
    errors->push_back(std::string("the domain's policy: ") + e.what());
    return false;
  }
}

void domain_policy_baseline() noexcept {
  uint64_t gen = 0;
  if (domain::domain_policy_generation(&gen) == 0) {
    std::lock_guard g(g_reload_lock);
    g_domain_gen.store(gen, std::memory_order_release);
  }
}

void domain_policy_sync() noexcept {
  uint64_t gen = 0;
  if (domain::domain_policy_generation(&gen) < 0 ||
      gen == g_domain_gen.load(std::memory_order_acquire) || gen == 0)
    return;
  std::vector<std::string> errors;
  if (adopt_domain_policy(&errors, nullptr, nullptr)) return;
  for (const std::string& e : errors)
    log::error("the domain's reloaded policy cannot run here, the old one stays: {}", e);
}

}  // namespace sockshim
