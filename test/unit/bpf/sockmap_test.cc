// Bytecode programs (sockmap.bpf.c, built by clang) as policy::Programs run by
// core on real loopback sockets: attached to the maps of a JSON policy with
// MapTable::prog_attach, they see each send and receive through the shim's
// hooks (this binary holds them). Each case checks the bytes every reader
// gets and the psock's counters. Skips (77) without clang.
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/control/control_programs.h"
#include "core/control/control_psocks.h"
#include "core/maps/bpf_helpers.h"
#include "core/maps/loaded_policy.h"
#include "core/psock/psock.h"
#include "core/sock/registry.h"
#include "policy/bytecode_program.h"
#include "shim/sockshim.h"
#include "test/support/redirect.h"
#include "test/support/wait.h"
#include "test/unit/bpf/elf_program.h"

using namespace sockshim;
using test_support::End;
using test_support::LoopbackPair;
using test_support::RedirectPairs;

namespace {

const char* kPolicy = R"({"version": 1,
  "maps": {
    "tx": {"type": "sockmap", "max_entries": 4},
    "rx": {"type": "sockmap", "max_entries": 4},
    "redir": {"type": "sockmap", "max_entries": 4},
    "hash": {"type": "sockhash", "max_entries": 16, "key": ["local_ip4", "local_port"]},
    "counts": {"type": "sk_storage", "flags": ["BPF_F_NO_PREALLOC"],
               "value": {"runs": "u64", "bytes": "u64", "cookie": "u64"}}},
  "programs": {}, "attach": []})";

void load_policy_text(const std::string& json) {
  char path[] = "/tmp/sockshim-bytecode-test-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, json.data(), json.size()) == static_cast<ssize_t>(json.size()));
  ::close(fd);
  std::vector<std::string> errors;
  const bool ok = sockshim::load_policy(path, &errors);
  unlink(path);
  for (const auto& e : errors) UNSCOPED_INFO(e);
  REQUIRE(ok);
}

// A loaded program and the global data it owns. Never freed: psocks of
// earlier cases may still point at their programs.
struct Loaded {
  std::unique_ptr<policy::Program> prog;
  std::vector<std::vector<uint8_t>> data;
  uint64_t bss_u64(size_t section = 0) const {
    uint64_t v;
    memcpy(&v, data.at(section).data(), 8);
    return v;
  }
};

// Loads section from the object as a program of type, its maps resolved to
// the current policy's.
Loaded& load(const std::string& section, policy::ProgramType type) {
  if (std::string(SOCKSHIM_BPF_SOCKMAP_OBJECT).empty()) {
    WARN("clang not found: the BPF object was not built");
    std::exit(77);
  }
  bpf_elf::Program p;
  const std::string err = bpf_elf::read_program(SOCKSHIM_BPF_SOCKMAP_OBJECT, section, &p);
  INFO(err);
  REQUIRE(err.empty());
  static auto* all = new std::vector<std::unique_ptr<Loaded>>;
  auto& l = *all->emplace_back(std::make_unique<Loaded>());
  l.data = p.data_init;
  std::shared_ptr<const LoadedPolicy> lp = current_policy();
  REQUIRE(lp);
  auto resolve = [&](uint8_t pseudo, int32_t fd, uint32_t off, bpf::MapRef* r) {
    if (pseudo == BPF_PSEUDO_MAP_FD) {
      const int i = lp->policy->map_index(p.maps.at(fd - bpf_elf::kMapFdBase));
      if (i < 0) return -EBADF;
      r->value = static_cast<uint64_t>(i);
      return 0;
    }
    auto& d = l.data.at(fd - bpf_elf::kDataFdBase);
    if (off >= d.size()) return -EINVAL;
    const auto base = reinterpret_cast<uint64_t>(d.data());
    *r = {base + off, base, d.size(), true};
    return 0;
  };
  std::string log;
  const int rc = policy::load_bytecode_program(section, type, p.insns, resolve, &l.prog, &log);
  INFO(log);
  REQUIRE(rc == 0);
  return l;
}

void attach(const Loaded& l, const char* map, policy::AttachType t) {
  REQUIRE(current_maps()->prog_attach(l.prog.get(), map, t) == 0);
}

void insert(const char* map, uint32_t key, int fd) {
  const uint64_t v = static_cast<uint64_t>(fd);
  REQUIRE(sockshim_map_update_elem(map, &key, &v, 0) == 0);
}

// Reads until n bytes came or nothing came for timeout_ms.
std::string read_some(int fd, size_t n, int timeout_ms = 1000) {
  std::string out;
  while (out.size() < n) {
    pollfd pf{fd, POLLIN, 0};
    if (::poll(&pf, 1, timeout_ms) <= 0) break;
    char buf[4096];
    const ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), MSG_DONTWAIT);
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

bool quiet(int fd, int timeout_ms = 100) {
  pollfd pf{fd, POLLIN, 0};
  return ::poll(&pf, 1, timeout_ms) == 0;
}

ssize_t send_str(int fd, const std::string& s) {
  return ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
}

// fd's psock's counters in one direction ("tx" or "rx"), as dump shows them.
nlohmann::json stats_of(int fd, const char* dir) {
  const uint64_t cookie = sockshim_socket_cookie(fd);
  for (const auto& p : control::dump_psocks())
    if (p["cookie"] == cookie) return p["stats"][dir];
  FAIL("no psock for fd " << fd);
  return {};
}

using policy::AttachType;
using policy::ProgramType;

}  // namespace

TEST_CASE("bytecode sk_msg: pass, counted in sk_storage and global data", "[bytecode]") {
  load_policy_text(kPolicy);
  Loaded& l = load("sk_msg/pass", ProgramType::sk_msg);
  attach(l, "tx", AttachType::sk_msg_verdict);
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  CHECK(send_str(pr.c, "abc") == 3);
  CHECK(send_str(pr.c, "de") == 2);
  CHECK(read_some(pr.p, 5) == "abcde");
  uint64_t counts[3] = {};
  REQUIRE(sockshim_map_lookup_elem("counts", &pr.c, counts) == 0);
  CHECK(counts[0] == 2);
  CHECK(counts[1] == 5);
  CHECK(l.bss_u64() == 2);
  auto tx = stats_of(pr.c, "tx");
  CHECK(tx["runs"] == 2);
  CHECK(tx["passed"] == 5);
  CHECK(l.prog->faults() == 0);
}

TEST_CASE("bytecode sk_msg: drop fails the send with EACCES", "[bytecode]") {
  load_policy_text(kPolicy);
  attach(load("sk_msg/drop", ProgramType::sk_msg), "tx", AttachType::sk_msg_verdict);
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  CHECK(send_str(pr.c, "ok") == 2);
  CHECK(read_some(pr.p, 2) == "ok");
  errno = 0;
  CHECK(send_str(pr.c, "Dxx") == -1);
  CHECK(errno == EACCES);
  CHECK(quiet(pr.p));
  auto tx = stats_of(pr.c, "tx");
  CHECK(tx["passed"] == 2);
  CHECK(tx["dropped"] == 3);
}

TEST_CASE("bytecode sk_msg: redirect egress and ingress", "[bytecode]") {
  load_policy_text(kPolicy);
  SECTION("egress: out of the target, to its peer") {
    attach(load("sk_msg/redir_egress", ProgramType::sk_msg), "tx", AttachType::sk_msg_verdict);
    RedirectPairs rp;
    REQUIRE(rp.connect());
    REQUIRE(rp.insert("tx", End::c, End::p) == 0);
    CHECK(send_str(rp.a.c, "hello") == 5);
    CHECK(read_some(rp.b.c, 5) == "hello");
    CHECK(quiet(rp.a.p));
    CHECK(quiet(rp.b.p));
    CHECK(stats_of(rp.a.c, "tx")["redirected"] == 5);
  }
  SECTION("ingress: into the target's receive queue") {
    attach(load("sk_msg/redir_ingress", ProgramType::sk_msg), "tx", AttachType::sk_msg_verdict);
    RedirectPairs rp;
    REQUIRE(rp.connect());
    REQUIRE(rp.insert("tx", End::c, End::p) == 0);
    CHECK(send_str(rp.a.c, "hello") == 5);
    CHECK(read_some(rp.b.p, 5) == "hello");
    CHECK(quiet(rp.a.p));
    CHECK(quiet(rp.b.c));
    CHECK(stats_of(rp.a.c, "tx")["redirected"] == 5);
  }
}

TEST_CASE("bytecode sk_msg: apply_bytes runs the verdict per 4 bytes", "[bytecode]") {
  load_policy_text(kPolicy);
  Loaded& l = load("sk_msg/apply", ProgramType::sk_msg);
  attach(l, "tx", AttachType::sk_msg_verdict);
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  CHECK(send_str(pr.c, "0123456789") == 10);
  CHECK(read_some(pr.p, 10) == "0123456789");
  CHECK(l.bss_u64() == 3);
  auto tx = stats_of(pr.c, "tx");
  CHECK(tx["runs"] == 3);
  CHECK(tx["passed"] == 10);
}

TEST_CASE("bytecode sk_msg: cork_bytes holds bytes until 8 are there", "[bytecode]") {
  load_policy_text(kPolicy);
  attach(load("sk_msg/cork", ProgramType::sk_msg), "tx", AttachType::sk_msg_verdict);
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  CHECK(send_str(pr.c, "abc") == 3);
  CHECK(quiet(pr.p));
  CHECK(stats_of(pr.c, "tx")["queued"] == 3);
  CHECK(send_str(pr.c, "defgh") == 5);
  CHECK(read_some(pr.p, 8) == "abcdefgh");
  CHECK(stats_of(pr.c, "tx")["passed"] == 8);
}

TEST_CASE("bytecode sk_msg: push, pop and pull", "[bytecode]") {
  load_policy_text(kPolicy);
  LoopbackPair pr;
  SECTION("push_data: two bytes written through the new data pointer") {
    attach(load("sk_msg/push", ProgramType::sk_msg), "tx", AttachType::sk_msg_verdict);
    REQUIRE(pr.connect());
    insert("tx", 0, pr.c);
    CHECK(send_str(pr.c, "hello") == 5);
    CHECK(read_some(pr.p, 7) == "<<hello");
    auto tx = stats_of(pr.c, "tx");
    CHECK(tx["pushed"] == 2);
    CHECK(tx["passed"] == 7);
  }
  SECTION("pop_data: bytes 1 and 2 removed") {
    attach(load("sk_msg/pop", ProgramType::sk_msg), "tx", AttachType::sk_msg_verdict);
    REQUIRE(pr.connect());
    insert("tx", 0, pr.c);
    CHECK(send_str(pr.c, "hello") == 5);
    CHECK(read_some(pr.p, 3) == "hlo");
    auto tx = stats_of(pr.c, "tx");
    CHECK(tx["popped"] == 2);
    CHECK(tx["passed"] == 3);
  }
  SECTION("pull_data: the window [2, 4) decides; a pull past the end fails") {
    attach(load("sk_msg/pull", ProgramType::sk_msg), "tx", AttachType::sk_msg_verdict);
    REQUIRE(pr.connect());
    insert("tx", 0, pr.c);
    CHECK(send_str(pr.c, "abcdef") == 6);
    CHECK(send_str(pr.c, "ab") == 2);
    CHECK(read_some(pr.p, 8) == "abcdefab");
    errno = 0;
    CHECK(send_str(pr.c, "abXXef") == -1);
    CHECK(errno == EACCES);
    CHECK(quiet(pr.p));
  }
}

TEST_CASE("bytecode sk_msg: a fault drops the run and is counted once", "[bytecode]") {
  load_policy_text(kPolicy);
  Loaded& l = load("sk_msg/fault", ProgramType::sk_msg);
  attach(l, "tx", AttachType::sk_msg_verdict);
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("tx", 0, pr.c);
  errno = 0;
  CHECK(send_str(pr.c, "abc") == -1);
  CHECK(errno == EACCES);
  CHECK(quiet(pr.p));
  CHECK(l.prog->faults() == 1);
  CHECK(stats_of(pr.c, "tx")["dropped"] == 3);
  // dump's programs list it, attached though not the policy's, with its faults.
  nlohmann::json found;
  for (const auto& p : control::dump_programs())
    if (p["name"] == "sk_msg/fault") found = p;
  REQUIRE(found.is_object());
  CHECK(found["bytecode"] == true);
  CHECK(found["faults"] == 1);
  CHECK(found["runs"] == 1);
  CHECK(found["rules"][0]["dropped"] == 1);
}

TEST_CASE("bytecode sk_skb: stream parser and verdict redirect frames", "[bytecode]") {
  load_policy_text(kPolicy);
  attach(load("sk_skb/stream_parser", ProgramType::stream_parser), "rx",
         AttachType::sk_skb_stream_parser);
  attach(load("sk_skb/stream_verdict", ProgramType::stream_verdict), "rx",
         AttachType::sk_skb_stream_verdict);
  RedirectPairs rp;
  REQUIRE(rp.connect());
  REQUIRE(rp.insert("rx", End::p, End::p) == 0);
  // Frames "\3abc" (out of redir[0]), "\2xz" (dropped), "\1q" (out), sent
  // in pieces that split them.
  CHECK(send_str(rp.a.c, std::string("\3a", 2)) == 2);
  CHECK(send_str(rp.a.c, std::string("bc\2xz\1", 6)) == 6);
  CHECK(send_str(rp.a.c, "q") == 1);
  CHECK(read_some(rp.b.c, 6) == std::string("\3abc\1q", 6));
  CHECK(quiet(rp.a.p));
  CHECK(test_support::eventually([&] { return stats_of(rp.a.p, "rx")["dropped"] == 3; }));
  auto rx = stats_of(rp.a.p, "rx");
  CHECK(rx["in"] == 9);
  CHECK(rx["redirected"] == 6);
  CHECK(rx["runs"] == 3);
}

TEST_CASE("bytecode sk_skb: verdict without a parser", "[bytecode]") {
  load_policy_text(kPolicy);
  attach(load("sk_skb/verdict", ProgramType::skb_verdict), "rx", AttachType::sk_skb_verdict);
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("rx", 0, pr.p);
  CHECK(send_str(pr.c, "hello") == 5);
  CHECK(read_some(pr.p, 5) == "hello");
  CHECK(send_str(pr.c, "xyz") == 3);
  CHECK(test_support::eventually([&] { return stats_of(pr.p, "rx")["dropped"] == 3; }));
  CHECK(quiet(pr.p));
  CHECK(stats_of(pr.p, "rx")["passed"] == 5);
}

TEST_CASE("bytecode sk_skb: the reader gets the bytes the verdict rewrote", "[bytecode]") {
  load_policy_text(kPolicy);
  Loaded& l = load("sk_skb/rewrite", ProgramType::skb_verdict);
  attach(l, "rx", AttachType::sk_skb_verdict);
  LoopbackPair pr;
  REQUIRE(pr.connect());
  insert("rx", 0, pr.p);
  CHECK(send_str(pr.c, "hello?") == 6);
  CHECK(read_some(pr.p, 6) == "Hello!");
  CHECK(stats_of(pr.p, "rx")["passed"] == 6);
  CHECK(l.prog->faults() == 0);
}

TEST_CASE("bytecode sockops: bpf_sock_hash_update, then redirect by hash key", "[bytecode]") {
  load_policy_text(kPolicy);
  attach(load("sk_msg/redir_hash", ProgramType::sk_msg), "hash", AttachType::sk_msg_verdict);
  Loaded& ops = load("sockops", ProgramType::sockops);
  LoopbackPair pr;
  REQUIRE(pr.connect());
  // What core's sock_ops hook does for a policy's sockops programs, for each
  // end as it is established.
  auto established = [&](int fd, policy::SockOp op) {
    SocketRef s = registry::get(fd);
    REQUIRE(s);
    SockHelpers h(*current_policy(), ProgramType::sockops, s.get(), fd);
    ops.prog->run_sockops(op, socket_tuple(*s.get()), h);
    CHECK(ops.prog->faults() == 0);
  };
  established(pr.c, policy::SockOp::active_established);
  established(pr.p, policy::SockOp::passive_established);
  // Its storage: the cookie, and the flag bpf_sock_ops_cb_flags_set refused.
  uint64_t counts[3] = {};
  REQUIRE(sockshim_map_lookup_elem("counts", &pr.c, counts) == 0);
  CHECK(counts[1] == 0x1000);
  CHECK(counts[2] == sockshim_socket_cookie(pr.c));
  // Both ends are in the hash under their own address and port.
  for (int fd : {pr.c, pr.p}) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    const uint32_t key[2] = {a.sin_addr.s_addr, ntohs(a.sin_port)};
    uint64_t v = 0;
    CHECK(sockshim_map_lookup_elem("hash", key, &v) == 0);
  }
  // c's message goes out of p, the socket keyed by c's remote address.
  CHECK(send_str(pr.c, "ping") == 4);
  CHECK(read_some(pr.c, 4) == "ping");
  CHECK(quiet(pr.p));
  CHECK(stats_of(pr.c, "tx")["redirected"] == 4);
}
