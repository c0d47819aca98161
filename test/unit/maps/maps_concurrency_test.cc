// Many threads inserting, looking up, deleting and closing at once. Run under
// TSan (a -Db_sanitize=thread build) to check for races; here they check that
// nothing is left behind and nothing deadlocks.
#include <errno.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <random>
#include <thread>

#include <sys/wait.h>

#include "core/psock/psock.h"
#include "shim/sockshim.h"
#include "test/support/wait.h"
#include "test/unit/maps/maps_test_util.h"

using namespace maps_test;

TEST_CASE("concurrent insert, lookup, delete and close leave nothing behind", "[concurrency]") {
  auto t = make_table({sockmap_spec("m", 64), sockhash_spec("h", 64), sk_storage_spec("s")});
  BpfMap& m = *t->find("m");
  BpfMap& h = *t->find("h");
  BpfMap& s = *t->find("s");
  // Earlier tests' psocks may go late (a receive engine lets go of its
  // reference on its own time): start from none.
  REQUIRE(test_support::eventually([] { return sockshim::psock_count() == 0; }));
  uint64_t psocks_before = sockshim::psock_count();
  std::atomic<int> bad{0};

  auto worker = [&](unsigned seed) {
    std::mt19937 rng(seed);
    for (int i = 0; i < 1500; ++i) {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
        ++bad;
        continue;
      }
      uint32_t k1 = rng() % 64, k2 = rng() % 128;
      int r1 = update(m, k1, sv[0]);
      int r2 = update(h, k2, sv[1]);
      if (r1 != 0 || (r2 != 0 && r2 != -E2BIG)) ++bad;
      uint64_t v = i;
      if (sockshim::map_update_elem(s, &sv[0], &v, sockshim::BPF_ANY) != 0) ++bad;
      for (int j = 0; j < 4; ++j) {
        uint64_t c;
        int r = lookup(j & 1 ? m : h, rng() % 64, &c);
        if (r != 0 && r != -ENOENT) ++bad;
        if (r == 0 && c == 0) ++bad;
      }
      int dr = del(rng() & 1 ? m : h, rng() % 64);
      if (dr != 0 && dr != -EINVAL && dr != -ENOENT) ++bad;
      if (rng() & 1) {
        int d = dup(sv[0]);
        close(sv[0]);
        close(d);
      } else {
        close(sv[0]);
      }
      close(sv[1]);
    }
  };
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < 4; ++i) threads.emplace_back(worker, i + 1);
  for (auto& th : threads) th.join();

  CHECK(bad == 0);
  CHECK(t->find_sock_map("m")->count() == 0);
  CHECK(t->find_sock_map("h")->count() == 0);
  CHECK(t->find_sk_storage("s")->count() == 0);
  CHECK(sockshim::psock_count() == psocks_before);
}

TEST_CASE("close from another thread while the socket is being inserted", "[concurrency]") {
  auto t = make_table({sockmap_spec("m", 4), sockhash_spec("h", 4)});
  BpfMap& m = *t->find("m");
  BpfMap& h = *t->find("h");
  for (int round = 0; round < 200; ++round) {
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    std::atomic<bool> started{false};
    std::thread inserter([&] {
      for (;;) {
        int r = update(m, 1, sv[0]);
        int r2 = update(h, 1, sv[0]);
        started = true;
        if (r == -EBADF || r2 == -EBADF) return;
      }
    });
    while (!started) std::this_thread::yield();
    close(sv[0]);
    inserter.join();
    uint64_t c;
    CHECK(lookup(m, 1, &c) == -ENOENT);
    CHECK(lookup(h, 1, &c) == -ENOENT);
    close(sv[1]);
  }
}

TEST_CASE("freeing a map while its sockets close", "[concurrency]") {
  for (int round = 0; round < 50; ++round) {
    auto t = make_table({sockmap_spec("m", 256), sockhash_spec("h", 256)});
    std::vector<int> fds;
    for (uint32_t i = 0; i < 128; ++i) {
      int sv[2];
      REQUIRE(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) == 0);
      REQUIRE(update(*t->find("m"), i, sv[0]) == 0);
      REQUIRE(update(*t->find("h"), i, sv[0]) == 0);
      fds.push_back(sv[0]);
      fds.push_back(sv[1]);
    }
    std::thread closer([&] {
      for (int fd : fds) close(fd);
    });
    t.reset();
    closer.join();
  }
  SUCCEED("no crash, no deadlock");
}

TEST_CASE("swapping the installed table while threads use the C API", "[concurrency]") {
  auto fresh = [] {
    return std::shared_ptr<sockshim::MapTable>(
        make_table({sockmap_spec("m", 16), sockhash_spec("h", 16), sk_storage_spec("s")}));
  };
  sockshim::install_maps(fresh());
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  auto worker = [&](unsigned seed) {
    std::mt19937 rng(seed);
    while (!stop) {
      int sv[2];
      if (socketpair(AF_UNIX, SOCK_DGRAM, 0, sv) != 0) continue;
      uint32_t key = rng() % 16;
      uint64_t fd = static_cast<uint64_t>(sv[0]), v = 1, c;
      for (const char* name : {"m", "h"}) {
        int r = sockshim_map_update_elem(name, &key, &fd, sockshim::BPF_ANY);
        if (r != 0 && r != -EBADF && r != -E2BIG) ++bad;  // EBADF: between tables
        r = sockshim_map_lookup_elem(name, &key, &c);
        if (r != 0 && r != -ENOENT && r != -EBADF) ++bad;
      }
      int r = sockshim_map_update_elem("s", &sv[0], &v, sockshim::BPF_ANY);
      if (r != 0 && r != -EBADF) ++bad;
      close(sv[0]);
      close(sv[1]);
    }
  };
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < 3; ++i) threads.emplace_back(worker, i + 7);
  for (int i = 0; i < 100; ++i) {
    sockshim::install_maps(fresh());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  stop = true;
  for (auto& th : threads) th.join();
  sockshim::install_maps(nullptr);
  CHECK(bad == 0);
}

// TSan kills a child that starts threads after a multi-threaded fork (the
// shim's fork handler does), so this one runs in the plain build only.
#ifndef __SANITIZE_THREAD__
TEST_CASE("a fork child can use the maps whatever the parent's threads held", "[concurrency]") {
  sockshim::install_maps(std::shared_ptr<sockshim::MapTable>(
      make_table({sockmap_spec("m", 8), sockhash_spec("h", 8), sk_storage_spec("s")})));
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    UnixPair p;
    uint64_t fd = static_cast<uint64_t>(p.a), v = 1;
    for (uint32_t i = 0; !stop; ++i) {
      uint32_t key = i % 8;
      sockshim_map_update_elem("m", &key, &fd, sockshim::BPF_ANY);
      sockshim_map_update_elem("h", &key, &fd, sockshim::BPF_ANY);
      sockshim_map_update_elem("s", &p.a, &v, sockshim::BPF_ANY);
      sockshim_map_delete_elem(i & 1 ? "m" : "h", &key);
    }
  });
  int failures = 0;
  for (int i = 0; i < 20; ++i) {
    pid_t pid = fork();
    if (pid == 0) {
      sockshim::maps_after_fork_child();
      alarm(5);  // a deadlock ends the child with SIGALRM
      UnixPair q;
      uint32_t key = 3;
      uint64_t fd = static_cast<uint64_t>(q.a), c = 0;
      int r = sockshim_map_update_elem("m", &key, &fd, sockshim::BPF_ANY) |
              sockshim_map_update_elem("h", &key, &fd, sockshim::BPF_ANY) |
              sockshim_map_lookup_elem("h", &key, &c);
      _exit(r == 0 && c == sockshim_socket_cookie(q.a) ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failures;
  }
  stop = true;
  busy.join();
  sockshim::install_maps(nullptr);
  CHECK(failures == 0);
}
#endif
