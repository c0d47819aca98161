// The robust lock: a process killed while holding it never leaves it held,
// the next locker repairs what it guards, and a failed repair fails closed.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "core/domain/robust_mutex.h"
#include "test/support/wait.h"

using sockshim::domain::lock_repaired;
using sockshim::domain::RobustMutex;

namespace {

// What the lock guards in these tests: a == b whenever the lock is free.
struct Shared {
  RobustMutex lock;
  uint64_t a, b;
  std::atomic<uint64_t> progress;  // the child's completed rounds (read unlocked)
  std::atomic<int> holding;        // the child has the lock
};

Shared* map_shared() {
  void* p =
      mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  REQUIRE(p != MAP_FAILED);
  auto* s = new (p) Shared{};
  REQUIRE(s->lock.init() == 0);
  return s;
}

void reap(pid_t pid) {
  int status;
  REQUIRE(waitpid(pid, &status, 0) == pid);
}

}  // namespace

TEST_CASE("a child that dies holding the lock: the parent gets it, sees owner death, repairs") {
  Shared* s = map_shared();
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    s->lock.lock(1000);
    s->a = 5;  // half-done: b not yet updated
    _exit(0);  // dies holding it
  }
  reap(pid);
  bool repaired = false;
  REQUIRE(lock_repaired(s->lock, 1000, [&] {
            repaired = true;
            s->b = s->a;
            return true;
          }) == 0);
  REQUIRE(repaired);
  REQUIRE(s->a == s->b);
  s->lock.unlock();
  // Consistent again: the next lock is an ordinary one.
  REQUIRE(s->lock.lock(1000) == 0);
  s->lock.unlock();
  munmap(s, sizeof *s);
}

TEST_CASE("a repair that fails leaves the lock unrecoverable: every locker fails closed") {
  Shared* s = map_shared();
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    s->lock.lock(1000);
    kill(getpid(), SIGKILL);
  }
  reap(pid);
  REQUIRE(lock_repaired(s->lock, 1000, [] { return false; }) == -ENOTRECOVERABLE);
  REQUIRE(s->lock.lock(1000) == -ENOTRECOVERABLE);
  munmap(s, sizeof *s);
}

TEST_CASE("a lock held by a stopped process times out instead of blocking for ever") {
  Shared* s = map_shared();
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    s->lock.lock(1000);
    s->holding = 1;
    raise(SIGSTOP);
    _exit(0);
  }
  REQUIRE(test_support::eventually([&] { return s->holding.load() == 1; }));
  REQUIRE(s->lock.lock(200) == -ETIMEDOUT);
  kill(pid, SIGKILL);
  reap(pid);
  REQUIRE(s->lock.lock(1000) == RobustMutex::kOwnerDied);
  s->lock.consistent();
  s->lock.unlock();
  munmap(s, sizeof *s);
}

TEST_CASE("a scribbled lock is refused before glibc sees it") {
  Shared* s = map_shared();
  memset(&s->lock, 0x5a, sizeof s->lock);
  REQUIRE(s->lock.lock(100) == -EUCLEAN);
  munmap(s, sizeof *s);
}

TEST_CASE("kill -9 of a child hammering the lock, 40 times: never left held, invariant kept") {
  Shared* s = map_shared();
  int repairs = 0;
  for (int round = 0; round < 40; ++round) {
    uint64_t start = s->progress.load();
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      for (;;) {
        if (lock_repaired(s->lock, 1000, [&] {
              s->b = s->a;
              return true;
            }) != 0)
          _exit(1);
        s->a += 1;
        for (volatile int i = 0; i < 200; ++i) {
        }
        s->b += 1;
        s->lock.unlock();
        s->progress.fetch_add(1);
      }
    }
    // Let it run a varying number of rounds, so the kill lands anywhere.
    uint64_t want = start + 1 + (round * 37) % 500;
    REQUIRE(test_support::eventually([&] { return s->progress.load() >= want; }));
    kill(pid, SIGKILL);
    reap(pid);
    REQUIRE(lock_repaired(s->lock, 1000, [&] {
              ++repairs;
              s->b = s->a;
              return true;
            }) == 0);
    REQUIRE(s->a == s->b);
    s->lock.unlock();
  }
  INFO("repairs after owner death: " << repairs);
  REQUIRE(repairs > 0);  // kills did land inside the lock
  REQUIRE(s->a >= 40);
  munmap(s, sizeof *s);
}
