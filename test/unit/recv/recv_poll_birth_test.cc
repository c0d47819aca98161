// Waits already asleep when a socket enters a map (core/readiness/poll_wake.h):
// poll, select, ppoll and pselect that began on a socket without a psock see
// what its verdict passes, and a wait that nothing makes ready runs its whole
// timeout, as in the kernel, where an insertion never leaves a poller blind.
#include <poll.h>
#include <sys/select.h>

#include <array>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>

#include "core/sock/blocked_waits.h"
#include "test/support/wait.h"
#include "test/unit/recv/recv_test_util.h"

using namespace recv_test;
using test_support::wait_blocked;

namespace {

enum Wait { kPoll, kSelect, kPpoll, kPselect };

// Waits on fd for reading in the way w names, up to ms; returns what the call
// returned, and in *readable whether it reported fd readable.
int wait_readable(Wait w, int fd, int ms, bool* readable) {
  pollfd p{fd, POLLIN, 0};
  fd_set r;
  FD_ZERO(&r);
  FD_SET(fd, &r);
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  timeval tv{ms / 1000, (ms % 1000) * 1000};
  int ret = -1;
  switch (w) {
    case kPoll:
      ret = ::poll(&p, 1, ms);
      break;
    case kSelect:
      ret = ::select(fd + 1, &r, nullptr, nullptr, &tv);
      break;
    case kPpoll:
      ret = ::ppoll(&p, 1, &ts, nullptr);
      break;
    case kPselect:
      ret = ::pselect(fd + 1, &r, nullptr, nullptr, &ts, nullptr);
      break;
  }
  *readable = (w == kPoll || w == kPpoll) ? (p.revents & POLLIN) != 0 : FD_ISSET(fd, &r) != 0;
  return ret;
}

}  // namespace

TEST_CASE("Readiness: waits asleep before the insertion see the passed frame",
          "[recv][readiness]") {
  load(skb_policy(R"({"fixed": 8})", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  const int before = sockshim::blocked_waits();
  std::array<std::atomic<int>, 4> r{-2, -2, -2, -2};
  std::array<std::atomic<bool>, 4> readable{};
  std::array<std::thread, 4> waiters;
  for (int w = kPoll; w <= kPselect; ++w)
    waiters[w] = std::thread([&, w] {
      bool rd = false;
      r[w] = wait_readable(static_cast<Wait>(w), a.p, 10000, &rd);
      readable[w] = rd;
    });
  // All four asleep in the shim's wait on a socket that has no psock yet.
  // (CHECK, not REQUIRE: the waiters are joined below either way.)
  CHECK(wait_blocked(before + 4));
  insert("rx", 0, a.p);
  send_all(a.c, "1234");  // half a frame: held, not readable
  CHECK(eventually([&] { return rx_counts(a.p).held == 4; }));
  CHECK(sockshim::blocked_waits() == before + 4);
  send_all(a.c, "5678");
  for (auto& t : waiters) t.join();
  for (int w = kPoll; w <= kPselect; ++w) {
    INFO("wait " << w << " (poll, select, ppoll, pselect)");
    CHECK(r[w] == 1);
    CHECK(readable[w]);
  }
  CHECK(read_some(a.p, 8) == "12345678");
}

TEST_CASE("Readiness: a wait woken by the insertion goes on for the rest of its timeout",
          "[recv][readiness]") {
  load(skb_policy(R"({"fixed": 8})", kPass));
  LoopbackPair a;
  REQUIRE(a.connect());
  const int before = sockshim::blocked_waits();
  constexpr int kMs = 400;
  std::atomic<int> r{-2};
  std::atomic<bool> readable{true};
  const auto start = std::chrono::steady_clock::now();
  std::thread waiter([&] {
    bool rd = true;
    r = wait_readable(kPoll, a.p, kMs, &rd);
    readable = rd;
  });
  CHECK(wait_blocked(before + 1));
  insert("rx", 0, a.p);
  waiter.join();
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(r == 0);
  CHECK_FALSE(readable);
  CHECK(took >= std::chrono::milliseconds(kMs));
}
