// Every policy in policy/examples loads and does what its description says.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <string>

#include "policy/policy.h"
#include "tools/fake_kernel.h"

using namespace sockshim::policy;

namespace {

std::unique_ptr<Policy> example(const std::string& name) {
  const std::string path = std::string(SOCKSHIM_EXAMPLES_DIR) + "/" + name;
  auto r = load_policy_file(path);
  for (const auto& e : r.errors) FAIL_CHECK(e.format(path));
  REQUIRE(r.ok());
  CHECK_FALSE(r.policy->description.empty());
  return std::move(r.policy);
}

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

SocketTuple tuple(uint16_t lport, uint16_t rport) {
  SocketTuple t;
  t.family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &t.local_ip4);
  t.remote_ip4 = t.local_ip4;
  t.local_port = lport;
  t.remote_port = rport;
  return t;
}

}  // namespace

TEST_CASE("every example has a test here", "[policy][examples]") {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(SOCKSHIM_EXAMPLES_DIR))
    if (e.path().extension() == ".json") ++n;
  CHECK(n == 6);
}

TEST_CASE("redis_drop_flushall drops FLUSHALL on the server's sockets", "[policy][examples]") {
  auto pol = example("redis_drop_flushall.json");
  FakeKernel k(*pol);
  const Program& ops = *pol->program("insert");
  ops.run_sockops(SockOp::passive_established, tuple(6379, 50000), k);
  ops.run_sockops(SockOp::active_established, tuple(50001, 6379), k);
  CHECK(k.entries(0).size() == 1);
  const Program& parser = *pol->program("parser");
  const Program& verdict = *pol->program("verdict");
  const std::string flush = "*1\r\n$8\r\nFLUSHALL\r\n";
  CHECK(parser.parse(bytes(flush)) == static_cast<int64_t>(flush.size()));
  CHECK(verdict.run_skb(bytes(flush), tuple(6379, 50000), k).verdict == Verdict::drop);
  CHECK(verdict.run_skb(bytes("*1\r\n$8\r\nflushall\r\n"), tuple(6379, 50000), k).verdict ==
        Verdict::drop);
  CHECK(verdict.run_skb(bytes("*2\r\n$3\r\nGET\r\n$1\r\na\r\n"), tuple(6379, 50000), k).verdict ==
        Verdict::pass);
  REQUIRE(k.log_lines().size() == 2);
  CHECK(k.log_lines()[0] == "verdict: dropped FLUSHALL");
}

TEST_CASE("length_prefix_drop_x frames and drops frames starting with X", "[policy][examples]") {
  auto pol = example("length_prefix_drop_x.json");
  FakeKernel k(*pol);
  const Program& frames = *pol->program("frames");
  const Program& drop_x = *pol->program("drop_x");
  const std::string stream("\0\0\0\2Xa\0\0\0\1b\0\0", 13);
  CHECK(frames.parse(bytes(stream)) == 6);
  CHECK(frames.parse(bytes(stream).subspan(6)) == 5);
  CHECK(frames.parse(bytes(stream).subspan(11)) == 0);
  CHECK(frames.parse(bytes(std::string("\0\x10\0\0", 4))) == -EMSGSIZE);
  CHECK(drop_x.run_skb(bytes(stream).subspan(0, 6), tuple(7000, 1), k).verdict == Verdict::drop);
  CHECK(drop_x.run_skb(bytes(stream).subspan(6, 5), tuple(7000, 1), k).verdict == Verdict::pass);
}

TEST_CASE("forwarder redirects each side out of the other", "[policy][examples]") {
  auto pol = example("forwarder.json");
  FakeKernel k(*pol);
  const Program& ops = *pol->program("insert");
  const Program& fwd = *pol->program("forward");
  ops.run_sockops(SockOp::passive_established, tuple(8080, 40000), k);
  ops.run_sockops(SockOp::active_established, tuple(40001, 9090), k);
  REQUIRE(k.entries(0).size() == 2);
  CHECK(fwd.run_skb(bytes("hello"), tuple(8080, 40000), k).verdict == Verdict::redirect);
  REQUIRE(k.redirect_target());
  CHECK(format_key(pol->maps[0], k.redirect_target()->key) == "pair[1]");
  CHECK(k.redirect_target()->flags == 0);
  CHECK(fwd.run_skb(bytes("reply"), tuple(40001, 9090), k).verdict == Verdict::redirect);
  CHECK(format_key(pol->maps[0], k.redirect_target()->key) == "pair[0]");
}

TEST_CASE("peer_acceleration redirects to the peer's ingress, else passes", "[policy][examples]") {
  auto pol = example("peer_acceleration.json");
  FakeKernel k(*pol);
  const Program& ops = *pol->program("insert");
  const Program& to_peer = *pol->program("to_peer");
  // Only the server end is in the map: the client's peer key is the server's.
  ops.run_sockops(SockOp::passive_established, tuple(6379, 40000), k);
  REQUIRE(k.entries(0).size() == 1);
  SkMsg m(bytes("PING"));
  CHECK(to_peer.run_msg(m, tuple(40000, 6379), k).verdict == Verdict::redirect);
  CHECK(k.redirect_target()->flags == BPF_F_INGRESS);
  CHECK(format_key(pol->maps[0], k.redirect_target()->key) ==
        "by_tuple{local_ip4=127.0.0.1, local_port=6379, remote_ip4=127.0.0.1, remote_port=40000}");
  // The server's peer (the client) is not in the map: the bytes go out normally.
  k.reset_run();
  CHECK(to_peer.run_msg(m, tuple(6379, 40000), k).verdict == Verdict::pass);
  CHECK_FALSE(k.redirect_target());
}

TEST_CASE("byte_quota drops sends once 1 MiB has gone out", "[policy][examples]") {
  auto pol = example("byte_quota.json");
  FakeKernel k(*pol);
  const Program& count = *pol->program("count");
  const std::string chunk(300000, 'q');
  for (int i = 0; i < 4; ++i) {
    SkMsg m(bytes(chunk));
    CHECK(count.run_msg(m, tuple(40000, 5000), k).verdict == Verdict::pass);
  }
  SkMsg m(bytes("x"));
  CHECK(count.run_msg(m, tuple(40000, 5000), k).verdict == Verdict::drop);
  const auto* st = k.storage(static_cast<uint32_t>(pol->map_index("quota")));
  REQUIRE(st);
  uint64_t sent;
  uint32_t sends;
  memcpy(&sent, st->data(), 8);
  memcpy(&sends, st->data() + 8, 4);
  CHECK(sent == 1200000);
  CHECK(sends == 4);
}

TEST_CASE("drop_and_loop drops DROP, loops LOOP back to the sender, passes the rest",
          "[policy][examples]") {
  auto pol = example("drop_and_loop.json");
  FakeKernel k(*pol);
  const Program& ops = *pol->program("insert");
  const Program& route = *pol->program("route");
  ops.run_sockops(SockOp::passive_established, tuple(7000, 40000), k);
  CHECK(k.entries(0).empty());  // only connecting sockets go in
  ops.run_sockops(SockOp::active_established, tuple(40000, 7000), k);
  REQUIRE(k.entries(0).size() == 1);
  SkMsg drop(bytes("please DROP this"));
  CHECK(route.run_msg(drop, tuple(40000, 7000), k).verdict == Verdict::drop);
  CHECK_FALSE(route.sticky_drop());
  k.reset_run();
  SkMsg loop(bytes("LOOP back"));
  CHECK(route.run_msg(loop, tuple(40000, 7000), k).verdict == Verdict::redirect);
  REQUIRE(k.redirect_target());
  CHECK(k.redirect_target()->flags == BPF_F_INGRESS);
  CHECK(format_key(pol->maps[0], k.redirect_target()->key) ==
        "conns{local_ip4=127.0.0.1, local_port=40000, remote_ip4=127.0.0.1, remote_port=7000}");
  k.reset_run();
  SkMsg hello(bytes("hello"));
  CHECK(route.run_msg(hello, tuple(40000, 7000), k).verdict == Verdict::pass);
}
