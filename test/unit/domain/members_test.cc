// The member table: joining, re-joining after exec, reaping dead members (also
// zombies and reused pids), a full table, and repair after a member died.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <vector>

#include "core/domain/domain.h"
#include "core/domain/members.h"
#include "test/support/wait.h"
#include "test/unit/domain/domain_test_util.h"

using namespace sockshim::domain;
using domain_test::SharedArena;
using domain_test::TempDir;

namespace {

std::vector<pid_t> pids(Arena& arena) {
  std::vector<Member> members;
  REQUIRE(members_list(arena, &members) == 0);
  std::vector<pid_t> out;
  for (const Member& m : members) out.push_back(m.pid);
  return out;
}

// A child that waits to be killed.
pid_t sleeper() {
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    for (;;) pause();
  }
  return pid;
}

}  // namespace

TEST_CASE("the start time of a process: this one, a zombie, none") {
  REQUIRE(process_start_time(getpid()) != 0);
  pid_t child = sleeper();
  REQUIRE(process_start_time(child) != 0);
  kill(child, SIGKILL);
  // Not yet waited for, it is a zombie: dead all the same.
  REQUIRE(test_support::eventually([&] { return process_start_time(child) == 0; }));
  waitpid(child, nullptr, 0);
  REQUIRE(process_start_time(child) == 0);
}

TEST_CASE("a fork child's start time from the clock is the one /proc gives") {
  // Each child exits 0 when its clock figure was exact, 1 when unknown (the
  // fork straddled a tick), 2 when it differs from /proc.
  int exact = 0;
  for (int i = 0; i < 50; ++i) {
    uint64_t before = boottime_ns();
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      uint64_t start = start_time_between(before, boottime_ns());
      _exit(start == 0 ? 1 : start == process_start_time(getpid()) ? 0 : 2);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) != 2);
    exact += WEXITSTATUS(status) == 0;
  }
  CHECK(exact >= 25);  // a tick is 10 ms; a fork takes well under 1 ms
  CHECK(start_time_between(5, 4) == 0);
}

TEST_CASE("members join, re-join after exec in their slot, and dead ones are reaped") {
  SharedArena a;
  uint64_t me = process_start_time(getpid());
  REQUIRE(member_join(a.arena, getpid(), me, "/p/a.json", "test") >= 0);
  uint64_t used = a.header()->used_bytes;
  // An exec'd image attaches again with the same pid and start time.
  REQUIRE(member_join(a.arena, getpid(), me, "/p/a.json", "test2") >= 0);
  REQUIRE(pids(a.arena) == std::vector<pid_t>{getpid()});
  REQUIRE(a.header()->used_bytes == used);  // its old policy string was freed

  pid_t child = sleeper();
  REQUIRE(member_join(a.arena, child, process_start_time(child), "", "child", true) >= 0);
  std::vector<Member> members;
  REQUIRE(members_list(a.arena, &members) == 0);
  REQUIRE(members.size() == 2);
  REQUIRE(members[0].policy == (members[0].pid == getpid() ? "/p/a.json" : ""));

  kill(child, SIGKILL);  // a zombie until waited for: reaped already
  REQUIRE(test_support::eventually([&] { return pids(a.arena).size() == 1; }, 1000));
  REQUIRE(pids(a.arena) == std::vector<pid_t>{getpid()});
  waitpid(child, nullptr, 0);

  // A slot whose pid now belongs to another process (another start time).
  REQUIRE(member_join(a.arena, getpid(), me + 1, "", "impostor") >= 0);
  REQUIRE(members_reap(a.arena) == 1);
  REQUIRE(pids(a.arena) == std::vector<pid_t>{getpid()});
  REQUIRE(a.arena.check("name:test") == 0);
}

TEST_CASE("a table full of live members refuses another with ENOSPC") {
  SharedArena a;
  MemberTable* t = member_table(a.arena);
  REQUIRE(t != nullptr);
  for (MemberSlot& s : t->slot) {  // every slot this live process
    s.pid = getpid();
    s.start_time = process_start_time(getpid());
    s.live = 1;
  }
  pid_t child = sleeper();
  REQUIRE(member_join(a.arena, child, process_start_time(child), "", "c") == -ENOSPC);
  t->slot[3].start_time += 1;  // one of them dead: its slot is reaped and reused
  REQUIRE(member_join(a.arena, child, process_start_time(child), "", "c") == 3);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
}

TEST_CASE("a scribbled member table is refused, naming it") {
  SharedArena a;
  REQUIRE(member_join(a.arena, getpid(), process_start_time(getpid()), "/p", "t") >= 0);
  MemberTable* t = member_table(a.arena);
  SECTION("its magic") {
    t->magic = 0;
    REQUIRE(member_join(a.arena, 1, 1, "", "") == -EUCLEAN);
    REQUIRE(std::string(a.arena.why()).find("member table") != std::string::npos);
  }
  SECTION("a slot's string offset") {
    t->slot[0].policy = a.size - 8;
    std::vector<Member> out;
    REQUIRE(members_list(a.arena, &out) == -EUCLEAN);
    REQUIRE(std::string(a.arena.why()).find("not a string") != std::string::npos);
    REQUIRE_FALSE(members_repair(a.arena));
  }
}

TEST_CASE("repair after a member died mid-join gives back its orphan block") {
  SharedArena a;
  REQUIRE(member_join(a.arena, getpid(), process_start_time(getpid()), "/p", "t") >= 0);
  uint64_t used = a.header()->used_bytes;
  int err = 0;
  REQUIRE(a.arena.alloc(200, &err) != 0);  // allocated, never linked: then killed
  REQUIRE(members_repair(a.arena));
  REQUIRE(a.header()->used_bytes == used);
  REQUIRE(a.arena.check("name:test") == 0);
  REQUIRE(pids(a.arena) == std::vector<pid_t>{getpid()});
}

TEST_CASE("a domain whose member was killed holding its lock is repaired by the next one") {
  TempDir dir;
  std::string d_dir = dir.path + "/d", why;
  Domain* d = Domain::open(d_dir, "name:killed", &why);
  REQUIRE(d != nullptr);
  REQUIRE(d->join(getpid(), process_start_time(getpid()), "/p", "test") == 0);
  MappedFile view;  // the parent's raw view, to read the header
  REQUIRE(map_arena(d_dir, "name:killed", &view) == "");
  Arena parent(view.base, view.size);
  uint64_t used = parent.header()->used_bytes;
  auto* died_holding = static_cast<std::atomic<int>*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    Domain* mine = Domain::open(d_dir, "name:killed", &why);
    if (!mine || mine->join(getpid(), process_start_time(getpid()), "/p/child", "child") != 0)
      _exit(2);
    // Die holding the lock in the middle of a change: an orphan block.
    Arena arena(view.base, view.size);
    int err = 0;
    if (arena.header()->lock.lock(1000) != 0 || arena.alloc(300, &err) == 0) _exit(3);
    died_holding->store(1);
    kill(getpid(), SIGKILL);
  }
  int status;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(died_holding->load() == 1);
  REQUIRE(parent.header()->used_bytes > used);  // its policy string and the orphan
  std::vector<Member> members;
  REQUIRE(d->members(&members) == 0);  // repaired, and the dead member reaped
  REQUIRE(members.size() == 1);
  REQUIRE(members[0].pid == getpid());
  REQUIRE_FALSE(d->failed());
  REQUIRE(parent.header()->used_bytes == used);  // nothing leaked
  REQUIRE(parent.check("name:killed") == 0);
  munmap(died_holding, 4096);
  munmap(view.base, view.size);
  delete d;
}
