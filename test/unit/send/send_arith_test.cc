// apply_bytes, cork_bytes, push/pop/pull across sends, and what send()
// returns (KERNEL-SEMANTICS.md §3.3, §3.4; the [V] examples).
#include <errno.h>

#include <mutex>

#include "core/psock/psock.h"
#include "core/sock/registry.h"
#include "test/unit/send/send_test_util.h"

using namespace send_test;

namespace {

std::string rules_with(const std::string& actions, const std::string& verdict = "\"pass\"") {
  return std::string(R"([{"do": [)") + kCount + ", " + actions + ", " + verdict + "]}]";
}

}  // namespace

TEST_CASE("apply_bytes 1: a 10-byte send runs the program 10 times with sizes 10..1",
          "[send][apply]") {
  load(msg_policy(rules_with(R"({"apply_bytes": 1})")));
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  CHECK(::send(pr.c, "0123456789", 10, 0) == 10);
  CHECK(read_some(pr.p, 10) == "0123456789");
  CHECK(storage("runs", pr.c) == 10);
  CHECK(storage("bytes", pr.c) == 55);  // 10 + 9 + ... + 1
}

TEST_CASE("apply_bytes 2: a 5-byte send runs the program 3 times", "[send][apply]") {
  load(msg_policy(rules_with(R"({"apply_bytes": 2})")));
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  CHECK(::send(pr.c, "abcde", 5, 0) == 5);
  CHECK(read_some(pr.p, 5) == "abcde");
  CHECK(storage("runs", pr.c) == 3);
  CHECK(storage("bytes", pr.c) == 5 + 3 + 1);
}

TEST_CASE("apply_bytes 4 across three 3-byte sends: runs of size 3, 2, 1", "[send][apply]") {
  load(msg_policy(rules_with(R"({"apply_bytes": 4})")));
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  for (int i = 0; i < 3; ++i) CHECK(::send(pr.c, "xyz", 3, 0) == 3);
  CHECK(read_some(pr.p, 9) == "xyzxyzxyz");
  CHECK(storage("runs", pr.c) == 3);
  CHECK(storage("bytes", pr.c) == 6);
}

TEST_CASE("apply_bytes hides a drop in the count", "[send][apply][drop]") {
  SECTION("apply 3 + DROP on a 10-byte send returns 7, nothing sent") {
    load(msg_policy(R"([{"do": [{"apply_bytes": 3}, "drop"]}])"));
    LoopbackPair pr;
    REQUIRE(pr.connect());
    insert("tx", 0, pr.c);
    CHECK(::send(pr.c, "0123456789", 10, 0) == 7);
    CHECK(quiet(pr.p, 300));
    errno = 0;
    CHECK(::send(pr.c, "0123456789", 10, 0) == -1);  // sticky
    CHECK(errno == EACCES);
  }
  SECTION("apply 4, PASS then DROP at the second run returns 6, 4 bytes arrive") {
    load(msg_policy(std::string(R"([{"if": {"storage": {"map": "runs", "field": "n", "ge": 1}},
                                      "do": ["drop"]},
                                     {"do": [)") +
                    kCount + R"(, {"apply_bytes": 4}, "pass"]}])"));
    LoopbackPair pr;
    REQUIRE(pr.connect());
    insert("tx", 0, pr.c);
    CHECK(::send(pr.c, "0123456789", 10, 0) == 6);
    CHECK(read_some(pr.p, 10, 600) == "0123");
  }
}

TEST_CASE("cork_bytes 10: 3 + 4 + 3 bytes arrive together after the third send", "[send][cork]") {
  load(msg_policy(rules_with(R"({"cork_bytes": 10})")));
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  CHECK(::send(pr.c, "abc", 3, 0) == 3);
  CHECK(quiet(pr.p));
  CHECK(storage("runs", pr.c) == 1);
  CHECK(::send(pr.c, "defg", 4, 0) == 4);
  CHECK(quiet(pr.p));
  CHECK(storage("runs", pr.c) == 1);
  CHECK(::send(pr.c, "hij", 3, 0) == 3);
  CHECK(read_some(pr.p, 10) == "abcdefghij");
  CHECK(storage("runs", pr.c) == 2);
  CHECK(storage("bytes", pr.c) == 3 + 10);  // the last run saw the whole message
}

TEST_CASE("corked bytes are freed, never sent, when the socket closes or leaves its map",
          "[send][cork]") {
  load(msg_policy(rules_with(R"({"cork_bytes": 10})")));
  SECTION("close") {
    LoopbackPair pr;
    REQUIRE(pr.connect());
    insert("tx", 0, pr.c);
    CHECK(::send(pr.c, "abc", 3, 0) == 3);
    ::close(pr.c);
    pr.c = -1;
    char buf[16];
    CHECK(::recv(pr.p, buf, sizeof buf, 0) == 0);  // EOF, nothing before it
  }
  SECTION("removal and re-insertion") {
    LoopbackPair pr;
    REQUIRE(pr.connect());
    insert("tx", 0, pr.c);
    CHECK(::send(pr.c, "abc", 3, 0) == 3);
    remove("tx", 0);
    insert("tx", 0, pr.c);
    CHECK(::send(pr.c, "0123456789", 10, 0) == 10);
    CHECK(read_some(pr.p, 13, 300) == "0123456789");
  }
}

TEST_CASE("closing a socket frees the corked message its psock holds, counted as dropped",
          "[send][cork]") {
  load(msg_policy(rules_with(R"({"cork_bytes": 10})")));
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  CHECK(::send(pr.c, "abc", 3, 0) == 3);
  // A reference on the psock outlives the socket (as a redirect's would).
  sockshim::PsockRef ps;
  {
    sockshim::SocketRef s = sockshim::registry::get(pr.c);
    REQUIRE(s);
    ps = sockshim::psock_get(s.get());
  }
  REQUIRE(ps);
  ::close(pr.c);
  pr.c = -1;
  std::lock_guard g(ps->tx_lock);
  CHECK(!ps->cork_alloc);
  CHECK(ps->cork.size() == 0);
  CHECK(ps->cork_bytes == 0);
  CHECK(ps->stats.tx.held.load() == 0);
  CHECK(ps->stats.tx.dropped.load() == 3);
}

TEST_CASE("push_data, pop_data: send() returns what the application wrote", "[send][push][pop]") {
  SECTION("push (0, 3) inserts 3 bytes first") {
    load(msg_policy(rules_with(R"({"push_data": {"start": 0, "bytes": "XYZ"}})")));
    LoopbackPair pr;
    REQUIRE(pr.connect());
    insert("tx", 0, pr.c);
    CHECK(::send(pr.c, "0123456789", 10, 0) == 10);
    CHECK(read_some(pr.p, 13) == "XYZ0123456789");
  }
  SECTION("push (10, 3) appends") {
    load(msg_policy(rules_with(R"({"push_data": {"start": 10, "bytes": "XYZ"}})")));
    LoopbackPair pr;
    REQUIRE(pr.connect());
    insert("tx", 0, pr.c);
    CHECK(::send(pr.c, "0123456789", 10, 0) == 10);
    CHECK(read_some(pr.p, 13) == "0123456789XYZ");
  }
  SECTION("pop (0, 3) and (7, 3)") {
    load(msg_policy(rules_with(R"({"pop_data": {"start": 0, "len": 3}})")));
    LoopbackPair pr;
    REQUIRE(pr.connect());
    insert("tx", 0, pr.c);
    CHECK(::send(pr.c, "0123456789", 10, 0) == 10);
    CHECK(read_some(pr.p, 7) == "3456789");
  }
  SECTION("pop (0, 10) sends nothing and still returns 10") {
    load(msg_policy(rules_with(R"({"pop_data": {"start": 0, "len": 10}})")));
    LoopbackPair pr;
    REQUIRE(pr.connect());
    insert("tx", 0, pr.c);
    CHECK(::send(pr.c, "0123456789", 10, 0) == 10);
    CHECK(quiet(pr.p, 200));
  }
  SECTION("push then DROP: delta corrects the count to a full drop") {
    load(msg_policy(R"([{"do": [{"push_data": {"start": 0, "bytes": "XYZ"}}, "drop"]}])"));
    LoopbackPair pr;
    REQUIRE(pr.connect());
    insert("tx", 0, pr.c);
    errno = 0;
    CHECK(::send(pr.c, "0123456789", 10, 0) == -1);
    CHECK(errno == EACCES);
  }
  SECTION("pop then DROP with apply_bytes 3") {
    // copied -= tosend + delta: 10 - (3 + 3) = 4.
    load(msg_policy(
        R"([{"do": [{"apply_bytes": 3}, {"pop_data": {"start": 0, "len": 3}}, "drop"]}])"));
    LoopbackPair pr;
    REQUIRE(pr.connect());
    insert("tx", 0, pr.c);
    CHECK(::send(pr.c, "0123456789", 10, 0) == 4);
  }
}
