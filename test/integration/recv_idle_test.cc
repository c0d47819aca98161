// An idle receive engine's CPU: psocks in the maps, a partial frame held and
// nothing else to do must cost no CPU over 3 s. Out of the unit suite for its
// length; the binary holds the shim's hook objects as the unit tests do.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "test/unit/recv/recv_test_util.h"

using namespace recv_test;

namespace {

// utime + stime of this process, in clock ticks.
long cpu_ticks() {
  FILE* f = fopen("/proc/self/stat", "r");
  REQUIRE(f);
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  const char* p = strrchr(buf, ')');
  REQUIRE(p);
  long utime = 0, stime = 0;
  // Fields after the command: state is 3rd, utime 14th, stime 15th.
  REQUIRE(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) ==
          2);
  return utime + stime;
}

}  // namespace

TEST_CASE("Idle: an engine with psocks and nothing to do uses no CPU", "[recv][idle]") {
  load(skb_policy(R"({"fixed": 100})", kEgressTo0));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  REQUIRE(pairs.insert("rx", End::p, End::p) == 0);
  send_all(a.c, "partial");  // a partial frame held, as a stalled peer leaves one
  REQUIRE(eventually([&] { return rx_counts(a.p).held == 7; }));
  long before = cpu_ticks();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  long used = cpu_ticks() - before;
  long hz = sysconf(_SC_CLK_TCK);
  UNSCOPED_INFO("idle CPU over 3 s: " << used << " ticks of " << hz << " per second");
  printf("recv idle: %ld ticks in 3 s (%.2f%% of one core)\n", used,
         100.0 * static_cast<double>(used) / (3.0 * static_cast<double>(hz)));
  CHECK(used <= 1);
}
