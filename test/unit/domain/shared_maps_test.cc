// The domain's shared maps: entries and holders, replacing at a key, sockets
// leaving when their last holder goes, fork children inheriting, processes
// inserting at once, holders killed mid-operation, and scribbled memory.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/domain/domain.h"
#include "core/domain/shared_maps.h"
#include "test/support/wait.h"
#include "test/unit/domain/domain_test_util.h"

using namespace sockshim::domain;
using domain_test::SharedArena;
using domain_test::TempDir;

namespace {

const MapDef kMap{"socks", 1, 4, 64};   // a sockhash of u32 keys
const MapDef kOther{"slots", 0, 4, 8};  // a sockmap

Holder holder(pid_t pid, int fd) {
  return {pid, 1000 + static_cast<uint64_t>(pid), fd};
}

uint64_t lookup(Arena& a, const MapDef& def, uint32_t key) {
  int err = 0;
  uint64_t c = shared_map_lookup(a, def, &key, &err);
  REQUIRE(err == 0);
  return c;
}

bool consistent(Arena& a) {
  std::vector<uint64_t> keep;
  return shared_maps_check(a, false, &keep) && a.check("name:test") == 0;
}

// The pids holding the socket at key.
std::vector<pid_t> holders_at(Arena& a, const MapDef& def, uint32_t key) {
  std::vector<SharedMap> maps;
  REQUIRE(shared_maps_read(a, &maps) == 0);
  std::vector<pid_t> out;
  for (const SharedMap& m : maps) {
    if (m.name != def.name) continue;
    for (const SharedEntry& e : m.entries)
      if (e.key.size() == 4 && memcmp(e.key.data(), &key, 4) == 0)
        for (const Holder& h : e.holders) out.push_back(h.pid);
  }
  return out;
}

}  // namespace

TEST_CASE("shared maps: insert, look up, replace at a key, delete") {
  SharedArena a;
  uint32_t k1 = 1, k2 = 2;
  REQUIRE(lookup(a.arena, kMap, k1) == 0);
  REQUIRE(shared_map_update(a.arena, kMap, &k1, 501, holder(10, 4)) == 0);
  REQUIRE(shared_map_update(a.arena, kMap, &k2, 502, holder(11, 5)) == 0);
  REQUIRE(shared_map_update(a.arena, kOther, &k1, 501, holder(10, 4)) == 0);
  uint64_t used = a.header()->used_bytes;
  REQUIRE(lookup(a.arena, kMap, k1) == 501);
  REQUIRE(lookup(a.arena, kMap, k2) == 502);
  REQUIRE(lookup(a.arena, kOther, k1) == 501);
  REQUIRE(consistent(a.arena));

  // The same socket again by the same process: nothing new.
  REQUIRE(shared_map_update(a.arena, kMap, &k1, 501, holder(10, 4)) == 0);
  REQUIRE(a.header()->used_bytes == used);
  // Another process puts its socket at k2: the later update wins, and 502,
  // now in no map, is forgotten with its holder.
  REQUIRE(shared_map_update(a.arena, kMap, &k2, 503, holder(12, 6)) == 0);
  REQUIRE(lookup(a.arena, kMap, k2) == 503);
  REQUIRE(holders_at(a.arena, kMap, k2) == std::vector<pid_t>{12});
  REQUIRE(a.header()->used_bytes == used);
  REQUIRE(consistent(a.arena));

  // A delete naming a socket that is no longer there changes nothing.
  REQUIRE(shared_map_delete(a.arena, kMap, &k2, 502) == -ENOENT);
  REQUIRE(shared_map_delete(a.arena, kMap, &k2, 503) == 0);
  REQUIRE(lookup(a.arena, kMap, k2) == 0);
  REQUIRE(shared_map_delete(a.arena, kMap, &k1, 0) == 0);
  REQUIRE(lookup(a.arena, kOther, k1) == 501);  // still in the other map
  REQUIRE(consistent(a.arena));
}

TEST_CASE("shared maps: a socket leaves every map when its last holder lets go") {
  SharedArena a;
  uint32_t k = 7;
  REQUIRE(shared_map_update(a.arena, kMap, &k, 900, holder(20, 3)) == 0);
  {
    uint32_t k0 = 0;  // what a map with no entries costs: its descriptor's buckets stay
    REQUIRE(shared_map_update(a.arena, kOther, &k0, 901, holder(20, 4)) == 0);
    REQUIRE(sock_holder_drop(a.arena, 901, 20, 1020) == 0);
    REQUIRE(lookup(a.arena, kOther, k0) == 0);
  }
  REQUIRE(shared_map_update(a.arena, kOther, &k, 900, holder(20, 3)) == 0);
  // A fork child of 20 holds it too, with the same fd.
  REQUIRE(sock_holders_inherit(a.arena, holder(20, -1), holder(21, -1)) == 0);
  REQUIRE(holders_at(a.arena, kMap, k) == std::vector<pid_t>{20, 21});
  std::vector<SharedMap> maps;
  REQUIRE(shared_maps_read(a.arena, &maps) == 0);
  REQUIRE(maps.size() == 2);
  REQUIRE(maps[0].entries[0].holders[1].fd == 3);

  REQUIRE(sock_holder_drop(a.arena, 900, 20, 1020) == 0);  // the parent closes it
  REQUIRE(lookup(a.arena, kMap, k) == 900);
  Holder dead = holder(21, -1);
  REQUIRE(sock_holders_drop_dead(a.arena, &dead, 1) == 0);  // the child dies
  REQUIRE(lookup(a.arena, kMap, k) == 0);
  REQUIRE(lookup(a.arena, kOther, k) == 0);
  REQUIRE(consistent(a.arena));
}

TEST_CASE("shared maps: an exec'd image lets go of the sockets whose fds it lost") {
  SharedArena a;
  uint32_t k1 = 1, k2 = 2;
  REQUIRE(shared_map_update(a.arena, kMap, &k1, 41, holder(30, 5)) == 0);  // O_CLOEXEC
  REQUIRE(shared_map_update(a.arena, kMap, &k2, 42, holder(30, 6)) == 0);  // kept
  REQUIRE(sock_holders_after_exec(
              a.arena, 30, 1030,
              [](int fd, uint64_t cookie, void*) { return fd == 6 && cookie == 42 ? fd : -1; },
              nullptr) == 0);
  REQUIRE(lookup(a.arena, kMap, k1) == 0);
  REQUIRE(lookup(a.arena, kMap, k2) == 42);
  REQUIRE(consistent(a.arena));
}

TEST_CASE("shared maps: an exec'd image finds its sockets at their new fds") {
  SharedArena a;
  uint32_t k1 = 1, k2 = 2;
  REQUIRE(shared_map_update(a.arena, kMap, &k1, 51, holder(30, 7)) == 0);  // dup2'd to 0
  REQUIRE(shared_map_update(a.arena, kOther, &k2, 51, holder(30, 7)) == 0);
  REQUIRE(shared_map_update(a.arena, kMap, &k2, 52, holder(31, 7)) == 0);  // another process's
  REQUIRE(sock_holders_after_exec(
              a.arena, 30, 1030,
              [](int fd, uint64_t cookie, void*) { return fd == 7 && cookie == 51 ? 0 : -1; },
              nullptr) == 0);
  std::vector<HeldEntry> held;
  REQUIRE(shared_entries_held(a.arena, 30, 1030, &held) == 0);
  REQUIRE(held.size() == 2);
  std::sort(held.begin(), held.end(),
            [](const HeldEntry& x, const HeldEntry& y) { return x.map < y.map; });
  CHECK(held[0].map == "slots");
  CHECK(held[1].map == "socks");
  for (const HeldEntry& e : held) {
    CHECK(e.cookie == 51);
    CHECK(e.fd == 0);
  }
  CHECK(held[0].key == std::vector<unsigned char>{2, 0, 0, 0});  // k2 in slots
  CHECK(held[1].key == std::vector<unsigned char>{1, 0, 0, 0});  // k1 in socks
  REQUIRE(shared_entries_held(a.arena, 31, 1031, &held) == 0);
  REQUIRE(held.size() == 1);
  CHECK(held[0].cookie == 52);
  CHECK(held[0].fd == 7);
  REQUIRE(consistent(a.arena));
}

TEST_CASE("shared maps: a map's generation moves with every entry in or out") {
  SharedArena a;
  int err = 0;
  uint32_t k = 3;
  REQUIRE(shared_map_gen_word(a.arena, kMap, &err) == nullptr);
  REQUIRE(err == 0);
  REQUIRE(shared_map_update(a.arena, kMap, &k, 61, holder(40, 3)) == 0);
  const uint32_t* w = shared_map_gen_word(a.arena, kMap, &err);
  REQUIRE(w != nullptr);
  uint32_t g0 = shared_map_gen(w);
  REQUIRE(shared_map_update(a.arena, kMap, &k, 61, holder(40, 3)) == 0);  // the same socket
  CHECK(shared_map_gen(w) == g0);
  REQUIRE(shared_map_update(a.arena, kMap, &k, 62, holder(41, 3)) == 0);  // replaced
  uint32_t g1 = shared_map_gen(w);
  CHECK(g1 != g0);
  REQUIRE(shared_map_update(a.arena, kOther, &k, 63, holder(41, 4)) == 0);  // another map
  CHECK(shared_map_gen(w) == g1);
  REQUIRE(sock_holder_drop(a.arena, 62, 41, 1041) == 0);  // its last holder goes
  CHECK(shared_map_gen(w) != g1);
  CHECK(lookup(a.arena, kMap, k) == 0);
  REQUIRE(shared_map_gen_word(a.arena, kMap, &err) == w);
  REQUIRE(consistent(a.arena));
}

TEST_CASE("shared maps: names, keys and definitions the table cannot take") {
  SharedArena a;
  uint32_t k = 0;
  std::string long_name(kMaxMapName, 'x');
  REQUIRE(shared_map_update(a.arena, {long_name, 1, 4, 8}, &k, 1, holder(1, 1)) == -EINVAL);
  unsigned char big[kMaxSharedKey + 1] = {};
  REQUIRE(shared_map_update(a.arena, {"big", 1, kMaxSharedKey + 1, 8}, big, 1, holder(1, 1)) ==
          -EINVAL);
  std::vector<std::string> names;
  for (uint32_t i = 0; i < kMaxSharedMaps; ++i) names.push_back("m" + std::to_string(i));
  for (const std::string& n : names)
    REQUIRE(shared_map_update(a.arena, {n, 1, 4, 8}, &k, 1, holder(1, 1)) == 0);
  REQUIRE(shared_map_update(a.arena, {"one-more", 1, 4, 8}, &k, 1, holder(1, 1)) == -ENOSPC);
  // The same name with another definition (a reload) is another map.
  REQUIRE(lookup(a.arena, {"m0", 1, 4, 16}, 0) == 0);
  REQUIRE(lookup(a.arena, {"m0", 1, 4, 8}, 0) == 1);
  REQUIRE(consistent(a.arena));
}

TEST_CASE("shared maps: processes inserting at once each find all of it") {
  TempDir dir;
  std::string d_dir = dir.path + "/d", why;
  Domain* d = Domain::open(d_dir, "name:many", &why);
  REQUIRE(d != nullptr);
  constexpr int kChildren = 4, kKeys = 100;
  std::vector<pid_t> children;
  for (int c = 0; c < kChildren; ++c) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      Domain* mine = Domain::open(d_dir, "name:many", &why);
      if (!mine) _exit(2);
      for (uint32_t i = 0; i < kKeys; ++i) {
        struct Op {
          uint32_t key;
          uint64_t cookie;
          Holder h;
        } op{c * 1000u + i, 10000u * (c + 1) + i, {getpid(), 77, static_cast<int>(i)}};
        int r = mine->run(
            [](Arena& a, void* ctx) {
              auto* o = static_cast<Op*>(ctx);
              return shared_map_update(a, kMap, &o->key, o->cookie, o->h);
            },
            &op);
        if (r != 0) _exit(3);
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
  }
  std::vector<SharedMap> maps;
  REQUIRE(d->run(
              [](Arena& a, void* ctx) {
                return shared_maps_read(a, static_cast<std::vector<SharedMap>*>(ctx));
              },
              &maps) == 0);
  REQUIRE(maps.size() == 1);
  REQUIRE(maps[0].entries.size() == kChildren * kKeys);
  for (const SharedEntry& e : maps[0].entries) {
    uint32_t key;
    memcpy(&key, e.key.data(), 4);
    int c = static_cast<int>(key / 1000);
    REQUIRE(e.cookie == 10000u * (c + 1) + key % 1000);
    REQUIRE(e.holders.size() == 1);
    REQUIRE(e.holders[0].pid == children[c]);
    REQUIRE(e.holders[0].fd == static_cast<int>(key % 1000));
  }
  delete d;
}

TEST_CASE("shared maps: a holder killed at any instruction leaves them whole") {
  TempDir dir;
  std::string d_dir = dir.path + "/d", why;
  Domain* d = Domain::open(d_dir, "name:kill", &why);
  REQUIRE(d != nullptr);
  MappedFile view;
  REQUIRE(map_arena(d_dir, "name:kill", &view) == "");
  Arena parent(view.base, view.size);
  uint64_t base_used = parent.header()->used_bytes;
  auto* ops = static_cast<std::atomic<uint64_t>*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  std::mt19937 rng(12345);
  int repaired_runs = 0;
  uint64_t killed_in_op = 0;
  for (int round = 0; round < 60; ++round) {
    ops->store(0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      Domain* mine = Domain::open(d_dir, "name:kill", &why);
      if (!mine) _exit(2);
      std::mt19937 r(static_cast<unsigned>(getpid()));
      for (uint64_t n = 0;; ++n) {
        struct Op {
          uint32_t key, what;
          uint64_t cookie;
          Holder h;
        } op{static_cast<uint32_t>(r() % 32),
             static_cast<uint32_t>(r() % 4),
             1 + r() % 48,
             {getpid(), 5, static_cast<int>(n % 100)}};
        ops[1].store(1);  // from here to the store of 0: killed mid-operation
        mine->run(
            [](Arena& a, void* ctx) {
              auto* o = static_cast<Op*>(ctx);
              switch (o->what) {
                case 0:
                case 1:
                  return shared_map_update(a, o->what ? kMap : kOther, &o->key, o->cookie, o->h);
                case 2:
                  shared_map_delete(a, kMap, &o->key, 0);
                  return 0;
                default:
                  return sock_holder_drop(a, o->cookie, o->h.pid, o->h.start_time);
              }
            },
            &op);
        ops[1].store(0);
        ops->fetch_add(1);
      }
    }
    uint64_t until = 1 + rng() % 400;
    REQUIRE(test_support::eventually([&] { return ops->load() >= until; }, 5000));
    kill(pid, SIGKILL);
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    killed_in_op += ops[1].load();
    // The next operation repairs if the child died holding the lock.
    Holder dead{pid, 5, -1};
    REQUIRE(d->run(
                [](Arena& a, void* ctx) {
                  std::vector<uint64_t> keep;
                  if (!shared_maps_check(a, false, &keep)) return -EUCLEAN;
                  return sock_holders_drop_dead(a, static_cast<Holder*>(ctx), 1);
                },
                &dead) == 0);
    REQUIRE_FALSE(d->failed());
    ++repaired_runs;
  }
  REQUIRE(repaired_runs == 60);
  REQUIRE(killed_in_op > 0);
  // Every dead holder's sockets are gone: only the maps' descriptors remain.
  std::vector<SharedMap> maps;
  REQUIRE(d->run(
              [](Arena& a, void* ctx) {
                return shared_maps_read(a, static_cast<std::vector<SharedMap>*>(ctx));
              },
              &maps) == 0);
  for (const SharedMap& m : maps) REQUIRE(m.entries.empty());
  REQUIRE(parent.check("name:kill") == 0);
  uint64_t descriptors = 0;
  for (const SharedMap& m : maps)
    descriptors += std::min<uint64_t>(std::bit_ceil(m.max_entries), kMaxMapBuckets) * 8 + 16;
  REQUIRE(parent.header()->used_bytes <= base_used + sizeof(SharedMapsRoot) + 16 + descriptors);
  munmap(ops, 4096);
  munmap(view.base, view.size);
  delete d;
}

TEST_CASE("shared maps: scribbled memory fails closed, saying what is wrong") {
  SharedArena a;
  uint32_t k = 3;
  REQUIRE(shared_map_update(a.arena, kMap, &k, 77, holder(1, 1)) == 0);
  auto* root = a.arena.at<SharedMapsRoot>(a.header()->maps_root);
  REQUIRE(root != nullptr);
  uint64_t* buckets = a.arena.at<uint64_t>(root->map[0].buckets);
  uint64_t entry_off = 0;
  for (uint32_t b = 0; b < root->map[0].n_buckets; ++b)
    if (buckets[b]) entry_off = buckets[b];
  REQUIRE(entry_off != 0);
  auto* entry = a.arena.at<EntryRec>(entry_off);
  std::vector<uint64_t> keep;
  int err = 0;

  SECTION("an entry's magic") {
    entry->magic = 0;
    REQUIRE(shared_map_lookup(a.arena, kMap, &k, &err) == 0);
    REQUIRE(err == -EUCLEAN);
    REQUIRE(std::string(a.arena.why()).find("map entry") != std::string::npos);
    REQUIRE_FALSE(shared_maps_check(a.arena, false, &keep));
  }
  SECTION("an offset outside the arena") {
    entry->next = a.size + 4096;
    REQUIRE_FALSE(shared_maps_check(a.arena, false, &keep));
    REQUIRE(std::string(a.arena.why()).find("is not one") != std::string::npos);
  }
  SECTION("a chain that loops") {
    entry->next = entry_off;
    REQUIRE_FALSE(shared_maps_check(a.arena, false, &keep));
    REQUIRE(std::string(a.arena.why()).find("loops") != std::string::npos);
    REQUIRE_FALSE(shared_maps_check(a.arena, true, &keep));  // no repair makes it whole
  }
  SECTION("a descriptor") {
    root->map[0].n_buckets = 3;
    REQUIRE(shared_map_update(a.arena, kMap, &k, 78, holder(1, 1)) == -EUCLEAN);
    REQUIRE(std::string(a.arena.why()).find("descriptor 0") != std::string::npos);
  }
  SECTION("the count") {
    root->map[0].count = 9;
    REQUIRE_FALSE(shared_maps_check(a.arena, false, &keep));
    REQUIRE(std::string(a.arena.why()).find("has 1 entries, its descriptor says 9") !=
            std::string::npos);
    keep.clear();
    REQUIRE(shared_maps_check(a.arena, true, &keep));  // recounted by the repair
  }
  SECTION("the root offset") {
    a.header()->maps_root = 8;
    REQUIRE(shared_map_update(a.arena, kMap, &k, 78, holder(1, 1)) == -EUCLEAN);
    REQUIRE(std::string(a.arena.why()).find("shared maps root") != std::string::npos);
    REQUIRE(a.arena.check("name:test") == -EUCLEAN);
  }
}

TEST_CASE("a domain repairs its shared maps after a holder died mid-update") {
  SharedArena a;
  uint32_t k = 1;
  REQUIRE(shared_map_update(a.arena, kMap, &k, 5, holder(1, 1)) == 0);
  uint64_t used = a.header()->used_bytes;
  // What a holder killed between making a socket record and its entry leaves:
  // a record with a holder and no entry, and an orphan block.
  uint32_t k2 = 2;
  REQUIRE(shared_map_update(a.arena, kMap, &k2, 6, holder(2, 2)) == 0);
  auto* root = a.arena.at<SharedMapsRoot>(a.header()->maps_root);
  uint64_t* buckets = a.arena.at<uint64_t>(root->map[0].buckets);
  for (uint32_t b = 0; b < root->map[0].n_buckets; ++b)  // unlink 6's entry from its map only
    for (uint64_t* l = &buckets[b]; *l;) {
      auto* e = a.arena.at<EntryRec>(*l);
      if (e->cookie == 6) {
        *l = e->next;
        break;
      }
      l = &e->next;
    }
  int err = 0;
  REQUIRE(a.arena.alloc(100, &err) != 0);
  std::vector<uint64_t> keep;
  REQUIRE_FALSE(shared_maps_check(a.arena, false, &keep));
  REQUIRE(members_repair(a.arena));
  REQUIRE(consistent(a.arena));
  REQUIRE(a.header()->used_bytes == used);
  REQUIRE(lookup(a.arena, kMap, k) == 5);
  REQUIRE(lookup(a.arena, kMap, k2) == 0);
}
