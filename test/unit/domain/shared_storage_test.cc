// The domain's sk_storage values: one value per socket for every holder,
// the flags' rules, values freed with the last holder, fork children and dead
// members, writers killed mid-update, and scribbled memory.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/domain/domain.h"
#include "core/domain/shared_storage.h"
#include "test/support/wait.h"
#include "test/unit/domain/domain_test_util.h"

using namespace sockshim::domain;
using domain_test::SharedArena;
using domain_test::TempDir;

namespace {

const StorageDef kCounts{"counts", 16, 0};
const StorageDef kTags{"tags", 8, 1};
const StorageDef kWide{
    "wide", 256,
    0};  // 32 words: a torn write would show  // BPF_F_NO_PREALLOC-like flags: another definition

Holder holder(pid_t pid) {
  return {pid, 1000 + static_cast<uint64_t>(pid), -1};
}

ValueRef hold(Arena& a, const StorageDef& def, uint64_t cookie, pid_t pid, bool create = true) {
  ValueRef v;
  REQUIRE(storage_hold(a, def, cookie, holder(pid), create, &v) == 0);
  REQUIRE(v.rec != nullptr);
  return v;
}

bool consistent(Arena& a) {
  std::vector<uint64_t> keep;
  return shared_storage_check(a, false, &keep) && a.check("name:test") == 0;
}

uint64_t word(const unsigned char* v) {
  uint64_t w;
  memcpy(&w, v, 8);
  return w;
}

}  // namespace

TEST_CASE("sk_storage in the domain: one value for every holder") {
  SharedArena a;
  uint64_t used = a.header()->used_bytes;
  ValueRef mine = hold(a.arena, kCounts, 42, 1);
  REQUIRE(mine.current() == nullptr);  // made absent: a lookup finds nothing yet
  ValueRef theirs;
  // Another process finds the record without making one.
  REQUIRE(storage_hold(a.arena, kCounts, 42, holder(2), false, &theirs) == 0);
  REQUIRE(theirs.rec == mine.rec);
  REQUIRE(storage_hold(a.arena, kCounts, 43, holder(2), false, &theirs) == -ENOENT);
  REQUIRE(storage_hold(a.arena, kTags, 42, holder(2), false, &theirs) == -ENOENT);

  uint64_t v1[2] = {7, 8}, v2[2] = {9, 10};
  REQUIRE(storage_write(mine, v1, 2 /* BPF_EXIST */) == -ENOENT);
  REQUIRE(storage_write(mine, v1, 1 /* BPF_NOEXIST */) == 0);
  REQUIRE(storage_write(mine, v2, 1) == -EEXIST);
  ValueRef seen = hold(a.arena, kCounts, 42, 2, false);
  REQUIRE(word(seen.current()) == 7);
  unsigned char* before = seen.current();
  REQUIRE(storage_write(mine, v2, 2) == 0);  // the other slot, then the switch
  REQUIRE(word(seen.current()) == 9);
  REQUIRE(word(before) == 7);  // a pointer from before still reads a whole old value
  // A program writing in place is seen by the other holder.
  uint64_t w = 11;
  memcpy(seen.current(), &w, 8);
  REQUIRE(word(mine.current()) == 11);

  std::vector<SharedValue> all;
  REQUIRE(shared_storage_read(a.arena, &all) == 0);
  REQUIRE(all.size() == 1);
  REQUIRE(all[0].map == "counts");
  REQUIRE(all[0].cookie == 42);
  REQUIRE(all[0].holders == std::vector<pid_t>{1, 2});

  REQUIRE(storage_delete(seen) == 0);
  REQUIRE(storage_delete(seen) == -ENOENT);
  REQUIRE(mine.current() == nullptr);
  REQUIRE(consistent(a.arena));

  // The values go with the socket's last holder, not before.
  REQUIRE(storage_write(mine, v1, 0) == 0);
  REQUIRE(storage_holder_drop(a.arena, 42, 1, holder(1).start_time) == 0);
  REQUIRE(word(hold(a.arena, kCounts, 42, 2, false).current()) == 7);
  REQUIRE(storage_holder_drop(a.arena, 42, 2, holder(2).start_time) == 0);
  REQUIRE(storage_hold(a.arena, kCounts, 42, holder(2), false, &theirs) == -ENOENT);
  REQUIRE(consistent(a.arena));
  // What is left is the root with its descriptor.
  REQUIRE(a.header()->used_bytes == used + sizeof(StorageRoot) + 16);
}

TEST_CASE("sk_storage in the domain: fork children and dead members") {
  SharedArena a;
  ValueRef v = hold(a.arena, kCounts, 5, 10);
  uint64_t x[2] = {1, 2};
  REQUIRE(storage_write(v, x, 0) == 0);
  REQUIRE(storage_holders_inherit(a.arena, holder(10), holder(11)) == 0);
  Holder dead = holder(10);
  REQUIRE(storage_holders_drop_dead(a.arena, &dead, 1) == 0);
  std::vector<SharedValue> all;
  REQUIRE(shared_storage_read(a.arena, &all) == 0);
  REQUIRE(all.size() == 1);
  REQUIRE(all[0].holders == std::vector<pid_t>{11});  // the child holds it on
  dead = holder(11);
  REQUIRE(storage_holders_drop_dead(a.arena, &dead, 1) == 0);
  REQUIRE(shared_storage_read(a.arena, &all) == 0);
  REQUIRE(all.empty());
  REQUIRE(consistent(a.arena));
}

TEST_CASE("sk_storage in the domain: names and definitions it cannot take") {
  SharedArena a;
  ValueRef v;
  std::string long_name(kMaxMapName, 'n');
  REQUIRE(storage_hold(a.arena, {long_name, 8, 0}, 1, holder(1), true, &v) == -EINVAL);
  REQUIRE(storage_hold(a.arena, {"big", kMaxStorageValue + 1, 0}, 1, holder(1), true, &v) ==
          -EINVAL);
  std::vector<std::string> names;
  for (uint32_t i = 0; i < kMaxStorageMaps; ++i) names.push_back("m" + std::to_string(i));
  for (const std::string& n : names)
    REQUIRE(storage_hold(a.arena, {n, 8, 0}, 1, holder(1), true, &v) == 0);
  REQUIRE(storage_hold(a.arena, {"one_more", 8, 0}, 1, holder(1), true, &v) == -ENOSPC);
  REQUIRE(consistent(a.arena));
}

TEST_CASE("sk_storage in the domain: a writer killed at any instruction leaves it whole") {
  TempDir dir;
  std::string d_dir = dir.path + "/d", why;
  Domain* d = Domain::open(d_dir, "name:kill", &why);
  REQUIRE(d != nullptr);
  MappedFile view;
  REQUIRE(map_arena(d_dir, "name:kill", &view) == "");
  Arena parent(view.base, view.size);
  auto* ops = static_cast<std::atomic<uint64_t>*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  std::mt19937 rng(4242);
  uint64_t killed_in_op = 0;
  for (int round = 0; round < 60; ++round) {
    ops->store(0);
    ops[1].store(0);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      Domain* mine = Domain::open(d_dir, "name:kill", &why);
      if (!mine) _exit(2);
      std::mt19937 r(static_cast<unsigned>(getpid()));
      for (uint64_t n = 1;; ++n) {
        struct Op {
          uint64_t cookie;
          uint32_t what;
          Holder h;
          uint64_t value[32];
        } op{1 + r() % 24, static_cast<uint32_t>(r() % 6), {getpid(), 5, -1}, {}};
        for (uint64_t& w : op.value) w = n;
        ops[1].store(1);  // from here to the store of 0: killed mid-operation
        mine->run(
            [](Arena& a, void* ctx) {
              auto* o = static_cast<Op*>(ctx);
              if (o->what == 5) return storage_holder_drop(a, o->cookie, o->h.pid, o->h.start_time);
              ValueRef v;
              if (int rc = storage_hold(a, kWide, o->cookie, o->h, true, &v)) return rc;
              if (o->what != 4) return storage_write(v, o->value, 0);
              storage_delete(v);  // -ENOENT when already absent
              return 0;
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
    // The next operation repairs if the child died holding the lock; every
    // value present is one write's, whole.
    std::vector<SharedValue> values;
    REQUIRE(d->run(
                [](Arena& a, void* ctx) {
                  std::vector<uint64_t> keep;
                  if (!shared_storage_check(a, false, &keep)) return -EUCLEAN;
                  return shared_storage_read(a, static_cast<std::vector<SharedValue>*>(ctx));
                },
                &values) == 0);
    REQUIRE_FALSE(d->failed());
    for (const SharedValue& v : values) {
      REQUIRE(v.value.size() == 256);
      for (size_t i = 8; i < 256; i += 8)
        REQUIRE(memcmp(v.value.data(), v.value.data() + i, 8) == 0);
      REQUIRE(word(v.value.data()) != 0);
    }
    Holder dead{pid, 5, -1};
    REQUIRE(
        d->run([](Arena& a,
                  void* ctx) { return storage_holders_drop_dead(a, static_cast<Holder*>(ctx), 1); },
               &dead) == 0);
  }
  REQUIRE(killed_in_op > 0);
  // Every dead holder's values are gone.
  std::vector<SharedValue> values;
  REQUIRE(d->run(
              [](Arena& a, void* ctx) {
                return shared_storage_read(a, static_cast<std::vector<SharedValue>*>(ctx));
              },
              &values) == 0);
  REQUIRE(values.empty());
  REQUIRE(parent.check("name:kill") == 0);
  munmap(ops, 4096);
  munmap(view.base, view.size);
  delete d;
}

TEST_CASE("sk_storage in the domain: scribbled memory fails closed, saying what is wrong") {
  SharedArena a;
  ValueRef v = hold(a.arena, kCounts, 77, 1);
  uint64_t x[2] = {1, 2};
  REQUIRE(storage_write(v, x, 0) == 0);
  auto* root = a.arena.at<StorageRoot>(a.header()->storage);
  REQUIRE(root != nullptr);
  std::vector<uint64_t> keep;
  ValueRef out;

  SECTION("a value's magic") {
    v.rec->magic = 0;
    REQUIRE(storage_hold(a.arena, kCounts, 77, holder(2), false, &out) == -EUCLEAN);
    REQUIRE(std::string(a.arena.why()).find("value record") != std::string::npos);
    REQUIRE_FALSE(shared_storage_check(a.arena, false, &keep));
  }
  SECTION("a value's state") {
    v.rec->state.store(77);
    REQUIRE_FALSE(shared_storage_check(a.arena, false, &keep));
    REQUIRE(std::string(a.arena.why()).find("state") != std::string::npos);
  }
  SECTION("a value's slots") {
    v.rec->data = a.size + 64;
    REQUIRE(storage_hold(a.arena, kCounts, 77, holder(2), false, &out) == -EUCLEAN);
    REQUIRE(std::string(a.arena.why()).find("slots") != std::string::npos);
  }
  SECTION("a chain that loops") {
    StorageSock* s = nullptr;
    for (uint64_t off : root->socks)
      if (off) s = a.arena.at<StorageSock>(off);
    REQUIRE(s != nullptr);
    auto* h = a.arena.at<StorageHolder>(s->holders);
    h->next = s->holders;
    REQUIRE_FALSE(shared_storage_check(a.arena, false, &keep));
    REQUIRE(std::string(a.arena.why()).find("loops") != std::string::npos);
  }
  SECTION("the root offset") {
    a.header()->storage = 8;
    REQUIRE(storage_hold(a.arena, kCounts, 77, holder(2), false, &out) == -EUCLEAN);
    REQUIRE(std::string(a.arena.why()).find("sk_storage root") != std::string::npos);
    REQUIRE(a.arena.check("name:test") == -EUCLEAN);
  }
}

TEST_CASE("sk_storage in the domain: the repair drops a socket a holder died making") {
  SharedArena a;
  hold(a.arena, kCounts, 9, 1);
  auto* root = a.arena.at<StorageRoot>(a.header()->storage);
  StorageSock* s = nullptr;
  for (uint64_t off : root->socks)
    if (off) s = a.arena.at<StorageSock>(off);
  REQUIRE(s != nullptr);
  s->holders = 0;  // as its last holder killed between letting go and unlinking it leaves it
  std::vector<uint64_t> keep;
  REQUIRE_FALSE(shared_storage_check(a.arena, false, &keep));
  REQUIRE(std::string(a.arena.why()).find("has no holder") != std::string::npos);
  keep.clear();
  REQUIRE(shared_storage_check(a.arena, true, &keep));
  ValueRef out;
  REQUIRE(storage_hold(a.arena, kCounts, 9, holder(1), false, &out) == -ENOENT);
  REQUIRE(consistent(a.arena));
}
