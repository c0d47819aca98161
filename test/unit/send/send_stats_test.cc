// The send path's byte counters as dump shows them: every case of
// KERNEL-SEMANTICS.md §3 that frees, gives back or holds bytes, each checked
// against in + pushed - popped == passed + dropped + redirected + queued.
#include <errno.h>
#include <signal.h>

#include "core/control/control_psocks.h"
#include "core/control/rule_text.h"
#include "test/unit/send/send_test_util.h"

using namespace send_test;

namespace {

// The tx counters of fd's psock, from the dump.
nlohmann::json tx_of(int fd) {
  uint64_t cookie = sockshim_socket_cookie(fd);
  for (const auto& p : sockshim::control::dump_psocks())
    if (p["cookie"] == cookie) return p["stats"]["tx"];
  FAIL("no psock for fd " << fd);
  return {};
}

void adds_up(const nlohmann::json& c) {
  INFO(c.dump());
  CHECK(c["in"].get<uint64_t>() + c["pushed"].get<uint64_t>() - c["popped"].get<uint64_t>() ==
        c["passed"].get<uint64_t>() + c["dropped"].get<uint64_t>() +
            c["redirected"].get<uint64_t>() + c["queued"].get<uint64_t>());
}

}  // namespace

TEST_CASE("Counters: apply 3 + DROP counts all 10 bytes dropped, though send() says 7",
          "[send][stats]") {
  load(msg_policy(R"([{"do": [{"apply_bytes": 3}, "drop"]}])"));
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  CHECK(::send(pr.c, "0123456789", 10, 0) == 7);
  CHECK(::send(pr.c, "01234", 5, 0) == -1);  // the sticky drop
  auto tx = tx_of(pr.c);
  CHECK(tx["in"] == 15);
  CHECK(tx["dropped"] == 15);
  CHECK(tx["runs"] == 1);
  adds_up(tx);
}

TEST_CASE("Counters: push and pop change the bytes passed, counted apart", "[send][stats]") {
  load(msg_policy(R"([{"do": [{"push_data": {"start": 0, "bytes": "abc"}},
                               {"pop_data": {"start": 5, "len": 1}}, "pass"]}])"));
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  CHECK(::send(pr.c, "0123456789", 10, 0) == 10);
  CHECK(read_some(pr.p, 12).size() == 12);
  auto tx = tx_of(pr.c);
  CHECK(tx["in"] == 10);
  CHECK(tx["pushed"] == 2);  // the run's net growth: 3 pushed, 1 popped
  CHECK(tx["popped"] == 0);
  CHECK(tx["passed"] == 12);
  adds_up(tx);
}

TEST_CASE("Counters: a redirect kept by apply_bytes to a target that closed drops",
          "[send][stats]") {
  load(msg_policy(
      R"([{"do": [{"apply_bytes": 1000},
                  {"redirect": {"map": "redir", "key": 0, "flags": ["BPF_F_INGRESS"]}}]}])"));
  LoopbackPair a;
  REQUIRE(a.connect());
  auto* b = new LoopbackPair;
  REQUIRE(b->connect());
  insert("tx", 0, a.c);
  insert("redir", 0, b->c);
  CHECK(::send(a.c, "0123456789", 10, 0) == 10);
  delete b;
  CHECK(::send(a.c, "01234", 5, MSG_NOSIGNAL) == -1);
  CHECK(errno == EPIPE);
  auto tx = tx_of(a.c);
  CHECK(tx["in"] == 15);
  CHECK(tx["redirected"] == 10);
  CHECK(tx["dropped"] == 5);
  adds_up(tx);
}

TEST_CASE("Counters: corked bytes are queued; a redirect of part of the cork drops the rest",
          "[send][stats]") {
  load(msg_policy(
      R"([{"do": [{"cork_bytes": 10}, {"apply_bytes": 4},
                  {"redirect": {"map": "redir", "key": 0, "flags": ["BPF_F_INGRESS"]}}]}])"));
  RedirectPairs pairs;
  auto& [a, b] = pairs;
  REQUIRE(pairs.connect());
  REQUIRE(pairs.insert("tx", End::c, End::c) == 0);
  CHECK(::send(a.c, "0123", 4, 0) == 4);
  auto tx = tx_of(a.c);
  CHECK(tx["in"] == 4);
  CHECK(tx["queued"] == 4);
  adds_up(tx);
  CHECK(::send(a.c, "456789", 6, 0) == 6);
  CHECK(read_some(b.c, 10, 300) == "0123");
  tx = tx_of(a.c);
  CHECK(tx["in"] == 10);
  CHECK(tx["redirected"] == 4);
  CHECK(tx["dropped"] == 6);
  CHECK(tx["queued"] == 0);
  adds_up(tx);
}

TEST_CASE("Counters: a non-blocking send that comes back short counts what went", "[send][stats]") {
  load(msg_policy(R"([{"if": {"data": {"prefix": "x"}}, "do": ["pass"]}])"));
  LoopbackPair pr;
  REQUIRE(pr.connect());
  int small = 4096;
  REQUIRE(setsockopt(pr.c, SOL_SOCKET, SO_SNDBUF, &small, sizeof small) == 0);
  REQUIRE(setsockopt(pr.p, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) == 0);
  insert("tx", 0, pr.c);
  set_nonblock(pr.c);
  std::string block(65536, 'x');
  uint64_t took = 0;
  for (int i = 0; i < 100; ++i) {
    ssize_t r = ::send(pr.c, block.data(), block.size(), 0);
    if (r < 0) break;
    took += static_cast<uint64_t>(r);
  }
  CHECK(errno == EAGAIN);
  auto tx = tx_of(pr.c);
  CHECK(tx["in"] == took);
  CHECK(tx["passed"] == took);
  CHECK(tx["dropped"] == 0);
  CHECK(tx["queued"] == 0);
}

TEST_CASE("Rule text: each rule's `if` and `do` in the policy's vocabulary", "[send][stats]") {
  load(msg_policy(R"([
    {"if": {"local_port": 6379, "remote_ip4": "127.0.0.1", "data": {"prefix": "GET\n"}},
     "do": [{"apply_bytes": 64}, {"redirect": {"map": "redir", "key": 2, "flags": ["BPF_F_INGRESS"]}}]},
    {"if": {"any": [{"size": {"range": [1, 9]}}, {"not": {"remote_port": [1, 2]}}]},
     "do": [{"push_data": {"start": 0, "bytes": "ab"}}, "pass"]},
    {"if": {"data": {"at": 2, "be16": 258}}, "do": ["drop"]},
    {"do": [{"cork_bytes": 5}]}])"));
  auto lp = sockshim::current_policy();
  REQUIRE(lp);
  const auto& rules = lp->policy->program("v")->compiled().rules;
  REQUIRE(rules.size() == 4);
  const auto& pol = *lp->policy;
  CHECK(sockshim::rule_if_text(rules[0], pol) ==
        "local_port=6379 and remote_ip4=127.0.0.1 and data prefix \"GET\\x0a\"");
  CHECK(sockshim::rule_do_text(rules[0], pol) == "apply_bytes 64, redirect redir[2] ingress");
  CHECK(sockshim::rule_if_text(rules[1], pol) == "(size in [1..9] or not (remote_port in {1,2}))");
  CHECK(sockshim::rule_do_text(rules[1], pol) == "push_data 0,2, pass");
  CHECK(sockshim::rule_if_text(rules[2], pol) == "data[2].be16=258");
  CHECK(sockshim::rule_if_text(rules[3], pol) == "always");
  CHECK(sockshim::rule_do_text(rules[3], pol) == "cork_bytes 5");
}
