// SockMap, SockHash, SkStorage and Psock: the kernel's semantics of
// KERNEL-SEMANTICS.md §2, as a user of the maps sees them.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/tcp.h>

#include <catch2/catch.hpp>

#include "core/psock/psock.h"
#include "core/psock/sk_msg_queue.h"
#include "core/sock/registry.h"
#include "core/sock/socket.h"
#include "shim/sockshim.h"
#include "test/support/wait.h"
#include "test/unit/maps/maps_test_util.h"

using namespace maps_test;
using sockshim::BPF_ANY;
using sockshim::BPF_EXIST;
using sockshim::BPF_NOEXIST;
using sockshim::policy::AttachType;

namespace {

sockshim::Psock* psock_of(int fd) {
  sockshim::SocketRef r = sockshim::registry::get(fd);
  return r ? r->psock.load() : nullptr;
}

}  // namespace

TEST_CASE("sockmap update, lookup and delete errors in the kernel's order", "[sockmap]") {
  auto t = make_table({sockmap_spec("m", 4)});
  REQUIRE(t);
  BpfMap& m = *t->find("m");
  UnixPair p;
  int notsock = open("/dev/null", O_RDONLY);

  CHECK(update(m, 0, p.a) == 0);
  CHECK(lookup_cookie(m, 0) == sockshim::socket_cookie(p.a));
  CHECK(update(m, 0, p.b, BPF_NOEXIST) == -EEXIST);
  CHECK(update(m, 1, p.b, BPF_EXIST) == -ENOENT);
  CHECK(update(m, 4, p.b) == -E2BIG);
  CHECK(update(m, 1, p.b, 3) == -EINVAL);
  CHECK(update(m, 1, p.b, sockshim::BPF_F_LOCK) == -EINVAL);
  CHECK(update(m, 1, UINT64_MAX) == -EINVAL);  // fd -1 as u64
  CHECK(update(m, 1, INT_MAX) == -EBADF);
  CHECK(update(m, 1, notsock) == -ENOTSOCK);
  // The fd is checked before the flags and the index.
  CHECK(update(m, 9, INT_MAX, 3) == -EBADF);
  CHECK(update(m, 0, p.b, BPF_EXIST) == 0);  // replaces
  CHECK(lookup_cookie(m, 0) == sockshim::socket_cookie(p.b));

  uint64_t c;
  CHECK(lookup(m, 1, &c) == -ENOENT);
  CHECK(lookup(m, 7, &c) == -ENOENT);
  CHECK(del(m, 1) == -EINVAL);
  CHECK(del(m, 4) == -EINVAL);
  CHECK(del(m, 0) == 0);
  CHECK(lookup(m, 0, &c) == -ENOENT);
  close(notsock);
}

TEST_CASE("sockmap value_size 4: fds as u32, lookup gives ENOSPC", "[sockmap]") {
  auto t = make_table({sockmap_spec("m", 2, 4)});
  BpfMap& m = *t->find("m");
  UnixPair p;
  CHECK(update32(m, 0, UINT32_MAX) == -EINVAL);
  CHECK(update32(m, 0, p.a) == 0);
  uint64_t c;
  CHECK(lookup(m, 0, &c) == -ENOSPC);
  CHECK(lookup(m, 1, &c) == -ENOSPC);  // checked before the key
}

TEST_CASE("sockmap get_next_key walks indices, sockhash walks entries", "[sockmap][sockhash]") {
  auto t = make_table({sockmap_spec("m", 3), sockhash_spec("h", 8)});
  BpfMap& m = *t->find("m");
  BpfMap& h = *t->find("h");
  uint32_t next, key;
  CHECK(sockshim::map_get_next_key(m, nullptr, &next) == 0);
  CHECK(next == 0);
  key = 0;
  CHECK(sockshim::map_get_next_key(m, &key, &next) == 0);
  CHECK(next == 1);  // even though slot 1 is empty
  key = 2;
  CHECK(sockshim::map_get_next_key(m, &key, &next) == -ENOENT);
  key = 99;
  CHECK(sockshim::map_get_next_key(m, &key, &next) == 0);
  CHECK(next == 0);

  CHECK(sockshim::map_get_next_key(h, nullptr, &next) == -ENOENT);
  UnixPair p;
  for (uint32_t k : {10u, 20u, 30u}) CHECK(update(h, k, p.a) == 0);
  std::vector<uint32_t> seen;
  const uint32_t* prev = nullptr;
  while (sockshim::map_get_next_key(h, prev, &next) == 0 && seen.size() < 10) {
    seen.push_back(next);
    key = next;
    prev = &key;
  }
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<uint32_t>{10, 20, 30});
  key = 12345;  // unknown: restart from the first
  CHECK(sockshim::map_get_next_key(h, &key, &next) == 0);
}

TEST_CASE("sockhash: full map E2BIG unless replacing, delete ENOENT", "[sockhash]") {
  auto t = make_table({sockhash_spec("h", 2)});
  BpfMap& h = *t->find("h");
  UnixPair p;
  CHECK(update(h, 1, p.a) == 0);
  CHECK(update(h, 2, p.b) == 0);
  CHECK(update(h, 3, p.a) == -E2BIG);
  CHECK(update(h, 2, p.a) == 0);  // replacing is allowed when full
  CHECK(update(h, 2, p.a, BPF_NOEXIST) == -EEXIST);
  CHECK(update(h, 3, p.a, BPF_EXIST) == -ENOENT);
  CHECK(lookup_cookie(h, 2) == sockshim::socket_cookie(p.a));
  CHECK(del(h, 3) == -ENOENT);
  CHECK(del(h, 2) == 0);
  CHECK(del(h, 2) == -ENOENT);
}

TEST_CASE("map creation checks", "[create]") {
  std::unique_ptr<MapTable> t;
  std::string err;
  auto create = [&](MapSpec s) { return MapTable::create({s}, {}, &t, &err); };
  CHECK(create(sockmap_spec("m", 0)) == -EINVAL);
  CHECK(create(sockmap_spec("m", 1, 2)) == -EINVAL);
  MapSpec np = sockmap_spec("m", 1);
  np.flags = sockshim::policy::BPF_F_NO_PREALLOC;
  CHECK(create(np) == -EINVAL);
  CHECK(create(sockhash_spec("h", 1, 512)) == 0);
  CHECK(create(sockhash_spec("h", 1, 513)) == -E2BIG);
  CHECK(create(sockhash_spec("h", 1, 0)) == -EINVAL);
  MapSpec st = sk_storage_spec("s");
  st.flags = 0;
  CHECK(create(st) == -EINVAL);
  CHECK(create(sk_storage_spec("s", 0)) == -EINVAL);
  CHECK(MapTable::create({sockmap_spec("m", 1), sockmap_spec("m", 1)}, {}, &t, &err) == -EEXIST);
}

TEST_CASE("one psock per socket, shared by every map and key", "[psock]") {
  auto t = make_table({sockmap_spec("a", 4), sockhash_spec("b", 4)});
  BpfMap& a = *t->find("a");
  BpfMap& b = *t->find("b");
  UnixPair p;
  uint64_t before = sockshim::psock_count();
  CHECK(psock_of(p.a) == nullptr);
  REQUIRE(update(a, 0, p.a) == 0);
  sockshim::Psock* ps = psock_of(p.a);
  REQUIRE(ps);
  CHECK(update(a, 1, p.a) == 0);
  CHECK(update(b, 7, p.a) == 0);
  CHECK(psock_of(p.a) == ps);
  CHECK(sockshim::psock_count() == before + 1);
  CHECK(ps->refcnt() == 3);
  CHECK(lookup_cookie(a, 1) == lookup_cookie(b, 7));
  // Re-inserting at the same key keeps one link.
  CHECK(update(a, 0, p.a) == 0);
  CHECK(ps->refcnt() == 3);
  CHECK(del(a, 0) == 0);
  CHECK(del(b, 7) == 0);
  CHECK(psock_of(p.a) == ps);
  CHECK(del(a, 1) == 0);  // the last link
  CHECK(psock_of(p.a) == nullptr);
  CHECK(sockshim::psock_count() == before);
}

TEST_CASE("dropping the psock discards its queued and corked bytes", "[psock]") {
  auto t = make_table({sockmap_spec("a", 2)});
  BpfMap& a = *t->find("a");
  UnixPair p;
  REQUIRE(update(a, 0, p.a) == 0);
  {
    sockshim::SocketRef s = sockshim::registry::get(p.a);
    sockshim::PsockRef ps = sockshim::psock_get(s.get());
    REQUIRE(ps);
    REQUIRE(sockshim::sk_psock_queue_bytes(ps.get(), {'a', 'b', 'c', 'd', 'e', 'f'}) == 0);
    std::lock_guard g(ps->tx_lock);
    ps->cork.mutable_bytes().assign(3, 'x');
    ps->cork_alloc = true;
    ps->cork_bytes = 10;
  }
  CHECK(sockshim::sk_psock_msg_inq(psock_of(p.a)) == 6);
  CHECK(del(a, 0) == 0);
  CHECK(psock_of(p.a) == nullptr);
  REQUIRE(update(a, 0, p.a) == 0);
  sockshim::Psock* fresh = psock_of(p.a);
  CHECK(sockshim::sk_psock_msg_inq(fresh) == 0);
  std::lock_guard g(fresh->tx_lock);
  CHECK(fresh->cork.bytes().empty());
  CHECK(!fresh->cork_alloc);
  CHECK(fresh->cork_bytes == 0);
}

TEST_CASE("a temporary psock reference delays the drop", "[psock]") {
  auto t = make_table({sockmap_spec("a", 2)});
  BpfMap& a = *t->find("a");
  UnixPair p;
  REQUIRE(update(a, 0, p.a) == 0);
  sockshim::SocketRef s = sockshim::registry::get(p.a);
  sockshim::PsockRef ps = sockshim::psock_get(s.get());
  CHECK(del(a, 0) == 0);
  CHECK(s->psock.load() == ps.get());
  ps.reset();
  CHECK(s->psock.load() == nullptr);
}

TEST_CASE("programs are copied at insertion only", "[psock][progs]") {
  auto t = make_table({sockmap_spec("a", 4)});
  auto& a = *t->find_sock_map("a");
  UnixPair p;
  REQUIRE(update(a, 0, p.a) == 0);
  CHECK(a.prog_attach(prog(1), AttachType::sk_msg_verdict) == 0);
  CHECK(psock_of(p.a)->progs.msg_parser.load() == nullptr);  // later attach does not reach it
  REQUIRE(update(a, 1, p.b) == 0);
  CHECK(psock_of(p.b)->progs.msg_parser.load() == prog(1));
  CHECK(a.prog_detach(prog(1), AttachType::sk_msg_verdict) == 0);
  CHECK(psock_of(p.b)->progs.msg_parser.load() == prog(1));  // detach does not remove it
}

TEST_CASE("conflicting roles give EBUSY; the msg program stays while in any map",
          "[psock][progs]") {
  auto t = make_table({sockmap_spec("msg", 4), sockmap_spec("plain", 4), sockmap_spec("sv", 4),
                       sockmap_spec("skbv", 4)},
                      {{prog(1), "msg", AttachType::sk_msg_verdict},
                       {prog(2), "sv", AttachType::sk_skb_stream_verdict},
                       {prog(3), "skbv", AttachType::sk_skb_verdict}});
  REQUIRE(t);
  BpfMap& msg = *t->find("msg");
  BpfMap& plain = *t->find("plain");
  BpfMap& sv = *t->find("sv");
  BpfMap& skbv = *t->find("skbv");
  UnixPair p;
  REQUIRE(update(msg, 0, p.a) == 0);
  CHECK(update(msg, 1, p.a) == -EBUSY);  // same program, second key
  CHECK(update(plain, 0, p.a) == 0);
  CHECK(del(msg, 0) == 0);
  CHECK(psock_of(p.a)->progs.msg_parser.load() == prog(1));
  CHECK(update(msg, 0, p.a) == -EBUSY);

  // A verdict is cleared when its map lets go, so re-insertion works.
  REQUIRE(update(sv, 0, p.b) == 0);
  CHECK(update(skbv, 0, p.b) == -EBUSY);  // stream_verdict vs skb_verdict
  CHECK(update(plain, 1, p.b) == 0);
  CHECK(del(sv, 0) == 0);
  CHECK(psock_of(p.b)->progs.stream_verdict.load() == nullptr);
  CHECK(update(skbv, 0, p.b) == 0);
}

TEST_CASE("attach rules: verdict exclusivity, ENOENT on detach, EOPNOTSUPP", "[progs]") {
  auto t = make_table({sockmap_spec("a", 1), sk_storage_spec("s")});
  auto& a = *t->find_sock_map("a");
  CHECK(a.prog_attach(prog(1), AttachType::sk_skb_stream_verdict) == 0);
  CHECK(a.prog_attach(prog(2), AttachType::sk_skb_verdict) == -EBUSY);
  CHECK(a.prog_attach(prog(3), AttachType::sk_skb_stream_verdict) == 0);  // replaces
  CHECK(a.prog_detach(prog(1), AttachType::sk_skb_stream_verdict) == -ENOENT);
  CHECK(a.prog_detach(prog(2), AttachType::sk_skb_verdict) == -EBUSY);
  CHECK(a.prog_detach(prog(3), AttachType::sk_skb_stream_verdict) == 0);
  CHECK(a.prog_detach(prog(3), AttachType::sk_skb_stream_verdict) == -ENOENT);
  CHECK(a.prog_attach(prog(2), AttachType::sk_skb_verdict) == 0);
  CHECK(a.prog_attach(prog(1), AttachType::sk_skb_stream_verdict) == -EBUSY);
  CHECK(t->prog_attach(prog(1), "s", AttachType::sk_msg_verdict) == -EOPNOTSUPP);
  CHECK(t->prog_attach(prog(1), "nope", AttachType::sk_msg_verdict) == -EBADF);
}

TEST_CASE("which sockets may enter, from the real socket state", "[state]") {
  auto t = make_table({sockmap_spec("m", 8)});
  BpfMap& m = *t->find("m");
  int tcp = socket(AF_INET, SOCK_STREAM, 0);
  CHECK(update(m, 0, tcp) == -EOPNOTSUPP);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(tcp, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  CHECK(update(m, 0, tcp) == -EOPNOTSUPP);  // bound
  REQUIRE(listen(tcp, 1) == 0);
  CHECK(update(m, 0, tcp) == 0);  // listening
  close(tcp);
  LoopbackPair tp;
  REQUIRE(tp.connect());
  CHECK(update(m, 1, tp.c) == 0);
  CHECK(update(m, 2, tp.p) == 0);

  int udp = socket(AF_INET6, SOCK_DGRAM, 0);
  CHECK(update(m, 3, udp) == -EOPNOTSUPP);  // unbound
  sockaddr_in6 a6{};
  a6.sin6_family = AF_INET6;
  a6.sin6_addr = in6addr_loopback;
  REQUIRE(bind(udp, reinterpret_cast<sockaddr*>(&a6), sizeof a6) == 0);
  CHECK(update(m, 3, udp) == 0);
  close(udp);

  int us = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK(update(m, 4, us) == -EOPNOTSUPP);
  close(us);
  int ud = socket(AF_UNIX, SOCK_DGRAM, 0);
  CHECK(update(m, 4, ud) == 0);
  close(ud);
  UnixPair seq(SOCK_SEQPACKET);
  CHECK(update(m, 5, seq.a) == -EOPNOTSUPP);
  int raw = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
  if (raw >= 0) {
    CHECK(update(m, 5, raw) == -EOPNOTSUPP);
    close(raw);
  }
}

TEST_CASE("close of the last fd removes from every map; a dup keeps it in", "[close]") {
  auto t = make_table({sockmap_spec("a", 4), sockhash_spec("b", 4)});
  BpfMap& a = *t->find("a");
  BpfMap& b = *t->find("b");
  uint64_t before = sockshim::psock_count();
  int sv[2];
  REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  uint64_t cookie = sockshim::socket_cookie(sv[0]);
  REQUIRE(update(a, 0, sv[0]) == 0);
  REQUIRE(update(b, 5, sv[0]) == 0);
  int d = dup(sv[0]);
  close(sv[0]);
  CHECK(lookup_cookie(a, 0) == cookie);
  CHECK(lookup_cookie(b, 5) == cookie);
  close(d);
  uint64_t c;
  CHECK(lookup(a, 0, &c) == -ENOENT);
  CHECK(lookup(b, 5, &c) == -ENOENT);
  CHECK(a.spec().name == "a");
  CHECK(sockshim::psock_count() == before);

  // The fd number is reused at once: identity is the socket, not the number.
  int again = socket(AF_UNIX, SOCK_DGRAM, 0);
  CHECK(lookup(a, 0, &c) == -ENOENT);
  CHECK(update(a, 0, again) == 0);
  CHECK(lookup_cookie(a, 0) == sockshim::socket_cookie(again));
  CHECK(lookup_cookie(a, 0) != cookie);
  close(again);
  close(sv[1]);
}

TEST_CASE("TCP stays in its maps through shutdown and the peer's close", "[close]") {
  auto t = make_table({sockmap_spec("a", 4)});
  BpfMap& a = *t->find("a");
  LoopbackPair tp;
  REQUIRE(tp.connect());
  REQUIRE(update(a, 0, tp.c) == 0);
  uint64_t cookie = sockshim::socket_cookie(tp.c);
  shutdown(tp.c, SHUT_RDWR);
  close(tp.p);
  tp.p = -1;
  // The peer's FIN came in: the client's side of the connection is closed.
  REQUIRE(test_support::eventually([&] {
    tcp_info ti{};
    socklen_t len = sizeof ti;
    return getsockopt(tp.c, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
           (ti.tcpi_state == TCP_TIME_WAIT || ti.tcpi_state == TCP_CLOSE);
  }));
  CHECK(lookup_cookie(a, 0) == cookie);
}

TEST_CASE("freeing a map lets go of its sockets", "[close]") {
  uint64_t before = sockshim::psock_count();
  UnixPair p;
  {
    auto t = make_table({sockmap_spec("a", 4), sockhash_spec("b", 4)});
    REQUIRE(update(*t->find("a"), 0, p.a) == 0);
    REQUIRE(update(*t->find("b"), 0, p.a) == 0);
    CHECK(sockshim::psock_count() == before + 1);
  }
  CHECK(psock_of(p.a) == nullptr);
  CHECK(sockshim::psock_count() == before);
}

TEST_CASE("sk_storage: per-socket values and the syscall errors", "[sk_storage]") {
  auto t = make_table({sk_storage_spec("s", 8)});
  BpfMap& s = *t->find("s");
  UnixPair p;
  int notsock = open("/dev/null", O_RDONLY);
  uint64_t v = 42, out = 0;
  int bad = INT_MAX, neg = -1;
  CHECK(sockshim::map_update_elem(s, &p.a, &v, BPF_ANY) == 0);
  CHECK(sockshim::map_lookup_elem(s, &p.a, &out) == 0);
  CHECK(out == 42);
  CHECK(sockshim::map_lookup_elem(s, &p.b, &out) == -ENOENT);
  CHECK(sockshim::map_update_elem(s, &p.a, &v, BPF_NOEXIST) == -EEXIST);
  CHECK(sockshim::map_update_elem(s, &p.b, &v, BPF_EXIST) == -ENOENT);
  CHECK(sockshim::map_update_elem(s, &p.b, &v, 3) == -EINVAL);
  CHECK(sockshim::map_update_elem(s, &p.b, &v, sockshim::BPF_F_LOCK) == -EINVAL);
  CHECK(sockshim::map_update_elem(s, &bad, &v, BPF_ANY) == -EBADF);
  CHECK(sockshim::map_update_elem(s, &neg, &v, BPF_ANY) == -EBADF);
  CHECK(sockshim::map_update_elem(s, &notsock, &v, BPF_ANY) == -ENOTSOCK);
  CHECK(sockshim::map_lookup_elem(s, &notsock, &out) == -ENOTSOCK);
  CHECK(sockshim::map_delete_elem(s, &bad) == -EBADF);
  CHECK(sockshim::map_delete_elem(s, &p.b) == -ENOENT);
  int next;
  CHECK(sockshim::map_get_next_key(s, nullptr, &next) == -524);
  // The value follows the socket, not the fd.
  int d = dup(p.a);
  CHECK(sockshim::map_lookup_elem(s, &d, &out) == 0);
  close(d);
  CHECK(sockshim::map_delete_elem(s, &p.a) == 0);
  CHECK(sockshim::map_lookup_elem(s, &p.a, &out) == -ENOENT);
  close(notsock);
}

TEST_CASE("sk_storage values go with the socket or the map", "[sk_storage]") {
  UnixPair p;
  uint64_t v = 7;
  {
    auto t = make_table({sk_storage_spec("s", 8), sk_storage_spec("s2", 8)});
    auto& s = *t->find_sk_storage("s");
    int sv[2];
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    REQUIRE(sockshim::map_update_elem(s, &sv[0], &v, BPF_ANY) == 0);
    REQUIRE(sockshim::map_update_elem(*t->find("s2"), &sv[0], &v, BPF_ANY) == 0);
    CHECK(s.count() == 1);
    close(sv[0]);
    close(sv[1]);
    CHECK(s.count() == 0);
    CHECK(t->find_sk_storage("s2")->count() == 0);
    REQUIRE(sockshim::map_update_elem(s, &p.a, &v, BPF_ANY) == 0);
    CHECK(sockshim::registry::get(p.a)->sk_storage_elems.load() == 1);
  }
  CHECK(sockshim::registry::get(p.a)->sk_storage_elems.load() == 0);
}

TEST_CASE("maps by name through the installed table", "[table]") {
  auto t = make_table({sockmap_spec("m", 2)});
  sockshim::install_maps(std::shared_ptr<MapTable>(std::move(t)));
  UnixPair p;
  uint32_t key = 0;
  uint64_t fd = static_cast<uint64_t>(p.a), cookie = 0;
  CHECK(sockshim::map_update_elem("m", &key, &fd, BPF_ANY) == 0);
  CHECK(sockshim::map_lookup_elem("m", &key, &cookie) == 0);
  CHECK(cookie == sockshim::socket_cookie(p.a));
  CHECK(sockshim::map_lookup_elem("nope", &key, &cookie) == -EBADF);
  CHECK(sockshim::map_lookup_elem(nullptr, &key, &cookie) == -EFAULT);
  sockshim::install_maps(nullptr);
  CHECK(sockshim::map_lookup_elem("m", &key, &cookie) == -EBADF);
  CHECK(sockshim::registry::get(p.a)->psock.load() == nullptr);
}

TEST_CASE("the C API: by map name, negative errno like libbpf", "[capi]") {
  sockshim::install_maps(std::shared_ptr<MapTable>(make_table(
      {sockmap_spec("sock_map", 2), sockhash_spec("by_port", 4), sk_storage_spec("st")})));
  UnixPair p;
  uint32_t key = 0, port = 8080;
  uint64_t fd = static_cast<uint64_t>(p.a), cookie = 0;
  CHECK(sockshim_map_update_elem("sock_map", &key, &fd, BPF_ANY) == 0);
  CHECK(sockshim_map_update_elem("sock_map", &key, &fd, BPF_NOEXIST) == -EEXIST);
  CHECK(sockshim_map_lookup_elem("sock_map", &key, &cookie) == 0);
  CHECK(cookie == sockshim_socket_cookie(p.a));
  CHECK(sockshim_map_update_elem("by_port", &port, &fd, BPF_ANY) == 0);
  uint32_t next = 99;
  CHECK(sockshim_map_get_next_key("by_port", nullptr, &next) == 0);
  CHECK(next == port);
  CHECK(sockshim_map_get_next_key("by_port", &port, &next) == -ENOENT);
  CHECK(sockshim_map_delete_elem("by_port", &port) == 0);
  CHECK(sockshim_map_delete_elem("by_port", &port) == -ENOENT);
  uint64_t v = 5;
  CHECK(sockshim_map_update_elem("st", &p.b, &v, BPF_ANY) == 0);
  int k;
  CHECK(sockshim_map_get_next_key("st", nullptr, &k) == -524);
  CHECK(sockshim_map_lookup_elem("missing", &key, &cookie) == -EBADF);
  CHECK(sockshim_socket_cookie(-1) == 0);
  sockshim::install_maps(nullptr);
}

TEST_CASE("sk_storage: accept copies only BPF_F_CLONE values", "[sk_storage]") {
  MapSpec clone = sk_storage_spec("clone", 8);
  clone.flags |= sockshim::policy::BPF_F_CLONE;
  auto t = make_table({clone, sk_storage_spec("plain", 8)});
  const int l = test_support::loopback_listener();
  REQUIRE(l >= 0);
  LoopbackPair tp;
  REQUIRE(tp.connect(l));
  uint64_t v = 77, out = 0;
  REQUIRE(sockshim::map_update_elem(*t->find("clone"), &l, &v, BPF_ANY) == 0);
  REQUIRE(sockshim::map_update_elem(*t->find("plain"), &l, &v, BPF_ANY) == 0);
  sockshim::SocketRef listener = sockshim::registry::get(l);
  sockshim::SocketRef child = sockshim::registry::get(tp.p);
  sockshim::sk_storage_clone(listener.get(), child.get());
  CHECK(sockshim::map_lookup_elem(*t->find("clone"), &tp.p, &out) == 0);
  CHECK(out == 77);
  CHECK(sockshim::map_lookup_elem(*t->find("plain"), &tp.p, &out) == -ENOENT);
  close(l);
}
