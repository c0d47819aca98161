// The scenarios: every user-space row of KERNEL-SEMANTICS §2.1, §2.4, §2.5 and
// §2.6, for TCP (v4, v6), UDP (v4, v6) and unix (stream, dgram) sockets.
#include <limits.h>
#include <sys/socket.h>

#include "test/conformance/conformance.h"

namespace conformance {
namespace {

constexpr uint64_t ANY = 0, NOEXIST = 1, EXIST = 2, BAD_FLAGS = 3, LOCK_FLAG = 4;
using AT = AttachType;

// Socket kinds that may enter a map.
enum class Kind { tcp4, tcp6, udp4, udp6, unix_stream, unix_dgram };
const Kind kKinds[] = {Kind::tcp4, Kind::tcp6,        Kind::udp4,
                       Kind::udp6, Kind::unix_stream, Kind::unix_dgram};

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::tcp4:
      return "tcp4";
    case Kind::tcp6:
      return "tcp6";
    case Kind::udp4:
      return "udp4";
    case Kind::udp6:
      return "udp6";
    case Kind::unix_stream:
      return "unix_stream";
    case Kind::unix_dgram:
      return "unix_dgram";
  }
  return "?";
}

// A fresh socket of kind k in a state that may enter a map.
int sock(Ctx& c, Kind k, const std::string& label) {
  switch (k) {
    case Kind::tcp4:
      return c.tcp(AF_INET, label).client;
    case Kind::tcp6:
      return c.tcp(AF_INET6, label).client;
    case Kind::udp4:
      return c.udp(AF_INET, Udp::bound, label);
    case Kind::udp6:
      return c.udp(AF_INET6, Udp::connected, label);
    case Kind::unix_stream:
      return c.unix_pair(SOCK_STREAM, label).first;
    case Kind::unix_dgram:
      return c.unix_socket(SOCK_DGRAM, label);
  }
  return -1;
}

std::vector<MapDef> one(MapType t, uint32_t value_size = 8) {
  if (t == MapType::sockmap) return {sockmap("m", 4, value_size)};
  return {sockhash("m", 4, 4, value_size)};
}
const char* type_name(MapType t) {
  return t == MapType::sockmap ? "sockmap" : "sockhash";
}

void reg(const std::string& name, std::vector<MapDef> maps, std::function<void(Ctx&)> body) {
  scenarios().push_back({name, std::move(maps), std::move(body)});
}

// §2.1 update/lookup/delete on each kind of socket and each map type.
void per_kind_and_type() {
  for (MapType t : {MapType::sockmap, MapType::sockhash})
    for (Kind kind : kKinds) {
      std::string suffix = std::string(type_name(t)) + " " + kind_name(kind);
      reg("update lookup delete " + suffix, one(t), [=](Ctx& c) {
        int a = sock(c, kind, "a"), b = sock(c, kind, "b");
        c.update("m", k(0), a);
        c.lookup("m", k(0));
        c.update("m", k(0), b, NOEXIST);
        c.update("m", k(1), b, EXIST);
        c.update("m", k(0), b, EXIST);
        c.lookup("m", k(0));
        c.update("m", k(0), b, ANY);  // the same socket at the same key
        c.update("m", k(0), b, EXIST);
        c.update("m", k(1), a, NOEXIST);
        c.update("m", k(1), a, BAD_FLAGS);
        c.update("m", k(1), a, LOCK_FLAG);
        c.update("m", k(7), a);  // sockmap: out of range
        c.lookup("m", k(1));
        c.lookup("m", k(2));
        c.lookup("m", k(7));
        c.del("m", k(0));
        c.del("m", k(0));
        c.del("m", k(7));
        c.lookup("m", k(0));
        c.lookup("m", k(1));
      });
      reg("value_size 4 " + suffix, one(t, 4), [=](Ctx& c) {
        int a = sock(c, kind, "a");
        c.update("m", k(0), a);
        c.update("m", k(1), -1);
        c.lookup("m", k(0));
        c.lookup("m", k(1));
        c.del("m", k(0));
      });
      reg("close removes " + suffix,
          {t == MapType::sockmap ? sockmap("m", 4) : sockhash("m", 4), sockhash("h", 4)},
          [=](Ctx& c) {
            int a = sock(c, kind, "a");
            c.update("m", k(0), a);
            c.update("m", k(1), a);
            c.update("h", k(5), a);
            int d = c.dup(a, "a.dup");
            c.close(a);
            c.lookup("m", k(0));
            c.lookup("h", k(5));
            c.close(d);
            c.lookup("m", k(0));
            c.lookup("m", k(1));
            c.lookup("h", k(5));
            c.del("m", k(0));
            c.del("h", k(5));
            // The fd numbers are reused at once; the entries do not come back.
            int n = sock(c, kind, "new");
            c.lookup("m", k(0));
            c.update("m", k(0), n);
            c.lookup("m", k(0));
          });
    }
}

// §2.4 psock sharing and program roles, per kind.
void per_kind_psock() {
  for (Kind kind : kKinds) {
    std::string kn = kind_name(kind);
    reg("one socket in many keys and maps " + kn,
        {sockmap("m", 4), sockhash("h", 4), sockmap("m2", 4)}, [=](Ctx& c) {
          int a = sock(c, kind, "a");
          c.update("m", k(0), a);
          c.update("m", k(1), a);
          c.update("h", k(1), a);
          c.update("h", k(2), a);
          c.update("m2", k(3), a);
          c.lookup("m", k(1));
          c.lookup("h", k(2));
          c.del("m", k(0));
          c.del("h", k(1));
          c.lookup("m2", k(3));
          c.del("m", k(1));
          c.del("h", k(2));
          c.del("m2", k(3));
          c.update("m", k(0), a, NOEXIST);
        });
    reg("msg program EBUSY and kept while in a map " + kn,
        {sockmap("msg", 4), sockhash("plain", 4)}, [=](Ctx& c) {
          c.attach(Prog::msg_pass, "msg", AT::sk_msg_verdict);
          int a = sock(c, kind, "a");
          c.update("msg", k(0), a);
          c.update("msg", k(1), a);
          c.update("msg", k(0), a);  // same key again
          c.update("plain", k(0), a);
          c.del("msg", k(0));
          c.update("msg", k(0), a);  // the msg program stayed
          c.del("plain", k(0));
          c.update("msg", k(0), a);  // the psock is gone: a fresh one
          c.lookup("msg", k(0));
        });
    reg("programs copied at insertion only " + kn, {sockmap("a", 4), sockmap("b", 4)}, [=](Ctx& c) {
      int s = sock(c, kind, "s");
      c.update("a", k(0), s);
      c.attach(Prog::msg_pass, "a", AT::sk_msg_verdict);
      c.update("a", k(1), s);  // the psock had none: it takes it now
      c.update("a", k(2), s);
      c.detach(Prog::msg_pass, "a", AT::sk_msg_verdict);
      c.update("a", k(3), s);  // the map has none now: no conflict
      c.attach(Prog::msg_pass2, "b", AT::sk_msg_verdict);
      c.update("b", k(0), s);  // detach did not remove it from the psock
    });
    reg("stream verdict vs skb verdict " + kn,
        {sockmap("sv", 4), sockhash("skbv", 4), sockmap("plain", 4)}, [=](Ctx& c) {
          c.attach(Prog::skb_pass, "sv", AT::sk_skb_stream_verdict);
          c.attach(Prog::skb_pass2, "skbv", AT::sk_skb_verdict);
          int a = sock(c, kind, "a"), b = sock(c, kind, "b");
          c.update("sv", k(0), a);
          c.update("skbv", k(0), a);
          c.update("sv", k(1), a);
          c.update("skbv", k(1), b);
          c.update("sv", k(1), b);
          c.update("plain", k(0), a);
          c.del("sv", k(0));
          c.update("skbv", k(0), a);  // the verdict left with its map
          c.lookup("skbv", k(0));
        });
    reg("parser and verdict " + kn, {sockmap("pv", 4), sockmap("pv2", 4), sockmap("plain", 4)},
        [=](Ctx& c) {
          for (const char* m : {"pv", "pv2"}) {
            c.attach(Prog::skb_parser, m, AT::sk_skb_stream_parser);
            c.attach(Prog::skb_pass, m, AT::sk_skb_stream_verdict);
          }
          int a = sock(c, kind, "a");
          if (c.update("pv", k(0), a) != 0) return;
          c.update("pv2", k(0), a, ANY);
          c.update("pv2", k(0), a, NOEXIST);
          c.update("pv2", k(0), a, EXIST);
          c.update("plain", k(0), a);
          c.del("pv", k(0));
          c.update("pv2", k(0), a);
        });
    reg("parser alone " + kn, {sockmap("p", 4), sockmap("p2", 4), sockmap("plain", 4)},
        [=](Ctx& c) {
          c.attach(Prog::skb_parser, "p", AT::sk_skb_stream_parser);
          c.attach(Prog::skb_parser, "p2", AT::sk_skb_stream_parser);
          int a = sock(c, kind, "a");
          c.update("p", k(0), a);
          c.update("p2", k(0), a);
          c.update("plain", k(0), a);
          c.del("p", k(0));
          c.update("p", k(0), a);  // a parser alone never started: it stays
        });
    reg("replacement releases the old socket " + kn, {sockmap("msg", 4), sockmap("plain", 4)},
        [=](Ctx& c) {
          c.attach(Prog::msg_pass, "msg", AT::sk_msg_verdict);
          int s1 = sock(c, kind, "s1"), s2 = sock(c, kind, "s2"), s3 = sock(c, kind, "s3");
          c.update("msg", k(0), s1);
          c.update("msg", k(0), s2);  // s1's last link goes
          c.update("msg", k(1), s1);
          c.update("plain", k(0), s3);
          c.update("msg", k(2), s3);
          c.update("msg", k(2), s1, ANY);  // s3 still in plain
          c.update("msg", k(3), s3);
          c.lookup("msg", k(2));
        });
    reg("sk_storage " + kn, {sk_storage("st", 8), sk_storage("st2", 16)}, [=](Ctx& c) {
      int a = sock(c, kind, "a"), b = sock(c, kind, "b");
      c.st_update("st", a, 42);
      c.st_lookup("st", a);
      c.st_lookup("st", b);
      c.st_update("st", a, 43, NOEXIST);
      c.st_update("st", b, 44, EXIST);
      c.st_update("st", a, 45, EXIST);
      c.st_update("st", b, 46, NOEXIST);
      c.st_update("st2", a, 47);
      c.st_lookup("st", a);
      c.st_lookup("st2", a);
      c.st_lookup("st2", b);
      int d = c.dup(a, "a.dup");
      c.st_lookup("st", d);
      c.close(a);
      c.st_lookup("st", d);
      c.st_delete("st", d);
      c.st_delete("st", d);
      c.st_lookup("st", d);
      c.st_lookup("st2", d);
      c.close(d);
      int n = sock(c, kind, "new");  // reuses the numbers
      c.st_lookup("st2", n);
      c.st_next("st");
    });
  }
}

// §2.1 which fds and sockets may enter, and the order of the checks.
void entry_checks() {
  for (MapType t : {MapType::sockmap, MapType::sockhash})
    for (uint32_t vs : {8u, 4u}) {
      std::string suffix = std::string(type_name(t)) + " value_size " + std::to_string(vs);
      reg("bad fds " + suffix, one(t, vs), [](Ctx& c) {
        c.update("m", k(0), -1);
        c.update("m", k(0), INT_MAX);
        c.update_value("m", k(0), 1ull << 31);
        c.update_value("m", k(0), (1ull << 32) + 3);
        c.update("m", k(0), c.closed_fd());
        c.update("m", k(0), c.file("devnull"));
        c.update("m", k(0), c.raw("raw"));
        c.update("m", k(0), c.unix_pair(SOCK_SEQPACKET, "seqpacket").first);
      });
      reg("check order " + suffix, one(t, vs), [](Ctx& c) {
        int good = c.unix_pair(SOCK_STREAM, "good").first;
        int raw = c.raw("raw");
        int udp = c.udp(AF_INET, Udp::unbound, "udp.unbound");
        int tcp = c.tcp_socket(AF_INET, Tcp::unbound, "tcp.unbound");
        c.update("m", k(0), INT_MAX, BAD_FLAGS);
        c.update("m", k(0), INT_MAX, LOCK_FLAG);
        c.update("m", k(0), c.file("devnull"), BAD_FLAGS);
        c.update("m", k(9), raw, BAD_FLAGS);
        c.update("m", k(9), tcp);
        c.update("m", k(9), udp, BAD_FLAGS);
        c.update("m", k(9), udp);
        c.update("m", k(9), good, BAD_FLAGS);
        c.update("m", k(9), good);
        c.update("m", k(9), good, EXIST);
        c.update("m", k(0), good, LOCK_FLAG);
        c.update("m", k(0), good, 8);
      });
    }
  for (int family : {AF_INET, AF_INET6}) {
    std::string f = family == AF_INET ? "tcp4" : "tcp6";
    reg("tcp states " + f, {sockmap("m", 16)}, [=](Ctx& c) {
      c.update("m", k(0), c.tcp_socket(family, Tcp::unbound, "unbound"));
      c.update("m", k(1), c.tcp_socket(family, Tcp::bound, "bound"));
      c.update("m", k(2), c.tcp_socket(family, Tcp::listen, "listener"));
      auto t = c.tcp(family, "conn");
      c.update("m", k(3), t.client);
      c.update("m", k(4), t.server);
      auto w = c.tcp(family, "closewait");
      c.close(w.server);
      c.settle();
      c.update("m", k(5), w.client);  // CLOSE_WAIT
      auto r = c.tcp(family, "reset");
      c.reset(r.server);
      c.settle();
      c.update("m", k(6), r.client);  // CLOSE after an RST
      auto s = c.tcp(family, "shut");
      c.shutdown(s.client, SHUT_WR);
      c.update("m", k(7), s.client);  // FIN_WAIT
    });
    reg("tcp stays through FIN, RST and shutdown " + f, {sockmap("m", 8), sockhash("h", 8)},
        [=](Ctx& c) {
          auto a = c.tcp(family, "a"), b = c.tcp(family, "b"), d = c.tcp(family, "d");
          c.update("m", k(0), a.client);
          c.update("h", k(0), a.server);
          c.update("m", k(1), b.client);
          c.update("m", k(2), d.client);
          c.shutdown(a.client, SHUT_RDWR);
          c.close(b.server);
          c.reset(d.server);
          c.settle();
          c.lookup("m", k(0));
          c.lookup("h", k(0));
          c.lookup("m", k(1));
          c.lookup("m", k(2));
          c.update("m", k(3), a.client);  // no longer ESTABLISHED: refused, still in
          c.close(a.client);
          c.close(b.client);
          c.lookup("m", k(0));
          c.lookup("m", k(1));
          c.lookup("m", k(2));
          c.lookup("h", k(0));
        });
    std::string u = family == AF_INET ? "udp4" : "udp6";
    reg("udp states " + u, {sockmap("m", 4), sockhash("h", 4)}, [=](Ctx& c) {
      c.update("m", k(0), c.udp(family, Udp::unbound, "unbound"));
      c.update("m", k(1), c.udp(family, Udp::bound, "bound"));
      c.update("m", k(2), c.udp(family, Udp::connected, "connected"));
      c.update("h", k(0), c.udp(family, Udp::unbound, "unbound2"));
    });
  }
  reg("unix states", {sockmap("m", 16)}, [](Ctx& c) {
    c.update("m", k(0), c.unix_socket(SOCK_STREAM, "stream.unconnected"));
    c.update("m", k(1), c.unix_listener("stream.listener"));
    auto p = c.unix_pair(SOCK_STREAM, "stream.pair");
    c.update("m", k(2), p.first);
    c.update("m", k(3), p.second);
    auto q = c.unix_pair(SOCK_STREAM, "stream.peer_closed");
    c.close(q.second);
    c.update("m", k(4), q.first);
    c.update("m", k(5), c.unix_socket(SOCK_DGRAM, "dgram.unbound"));
    auto d = c.unix_pair(SOCK_DGRAM, "dgram.pair");
    c.update("m", k(6), d.first);
    c.update("m", k(7), c.unix_socket(SOCK_SEQPACKET, "seqpacket"));
    auto s = c.unix_pair(SOCK_STREAM, "stream.shut");
    c.shutdown(s.first, SHUT_RDWR);
    c.update("m", k(8), s.first);
    c.lookup("m", k(2));
    c.lookup("m", k(6));
  });
}

// §2.1 lookup, delete, get_next_key and a full sockhash.
void map_walks() {
  reg("sockmap get_next_key walks indices", {sockmap("m", 4)}, [](Ctx& c) {
    c.walk("m");
    int a = c.unix_pair(SOCK_STREAM, "a").first;
    c.update("m", k(2), a);
    c.walk("m");
    for (uint32_t i : {0u, 1u, 2u, 3u, 4u, 99u}) {
      Key key = k(i);
      c.next("m", &key);
    }
    c.next("m", nullptr);
  });
  for (uint32_t ks : {4u, 12u}) {
    reg("sockhash get_next_key order key_size " + std::to_string(ks), {sockhash("h", 32, ks)},
        [ks](Ctx& c) {
          auto key = [ks](uint32_t i) { return ks == 4 ? k(i * 7 + 1) : k3(i, 0x0100007f, i * 3); };
          c.walk("h");
          c.next("h", nullptr);
          int a = c.unix_pair(SOCK_STREAM, "a").first;
          int b = c.unix_socket(SOCK_DGRAM, "b");
          for (uint32_t i = 0; i < 20; ++i) c.update("h", key(i), i % 2 ? a : b);
          c.walk("h");
          for (uint32_t i = 0; i < 20; i += 3) c.del("h", key(i));
          c.walk("h");
          c.update("h", key(4), b);  // a replaced key moves to the head of its bucket
          c.walk("h");
          Key unknown = key(1000);
          c.next("h", &unknown);
          c.lookup("h", key(5));
          c.lookup("h", key(6));
          c.lookup("h", key(1000));
        });
  }
  reg("sockhash full", {sockhash("h", 2)}, [](Ctx& c) {
    auto p = c.unix_pair(SOCK_STREAM, "p");
    c.update("h", k(1), p.first);
    c.update("h", k(2), p.second);
    c.update("h", k(3), p.first);
    c.update("h", k(3), p.first, NOEXIST);
    c.update("h", k(2), p.first, ANY);
    c.update("h", k(2), p.second, EXIST);
    c.update("h", k(1), p.first, NOEXIST);
    c.del("h", k(1));
    c.update("h", k(3), p.first, NOEXIST);
    c.walk("h");
  });
  reg("lookup and delete errors",
      {sockmap("m", 2), sockhash("h", 2), sockmap("m4", 2, 4), sockhash("h4", 2, 4, 4)},
      [](Ctx& c) {
        for (const char* m : {"m", "h", "m4", "h4"}) {
          c.lookup(m, k(0));
          c.lookup(m, k(5));
          c.del(m, k(0));
          c.del(m, k(5));
        }
      });
}

// §2.4 attach and detach rules.
void attach_rules() {
  for (MapType t : {MapType::sockmap, MapType::sockhash}) {
    std::string tn = type_name(t);
    reg("attach rules " + tn, {one(t)[0], sk_storage("st")}, [](Ctx& c) {
      c.attach(Prog::skb_pass, "m", AT::sk_skb_stream_verdict);
      c.attach(Prog::skb_pass2, "m", AT::sk_skb_verdict);
      c.detach(Prog::skb_pass2, "m", AT::sk_skb_verdict);
      c.attach(Prog::skb_pass2, "m", AT::sk_skb_stream_verdict);  // replaces
      c.detach(Prog::skb_pass, "m", AT::sk_skb_stream_verdict);
      c.detach(Prog::skb_pass2, "m", AT::sk_skb_stream_verdict);
      c.detach(Prog::skb_pass2, "m", AT::sk_skb_stream_verdict);
      c.attach(Prog::skb_pass, "m", AT::sk_skb_verdict);
      c.attach(Prog::skb_pass, "m", AT::sk_skb_stream_verdict);
      c.detach(Prog::skb_pass, "m", AT::sk_skb_stream_verdict);
      c.detach(Prog::skb_pass, "m", AT::sk_skb_verdict);
      c.detach(Prog::skb_parser, "m", AT::sk_skb_stream_parser);
      c.attach(Prog::skb_parser, "m", AT::sk_skb_stream_parser);
      c.attach(Prog::skb_pass, "m", AT::sk_skb_stream_parser);  // any SK_SKB program
      c.detach(Prog::skb_parser, "m", AT::sk_skb_stream_parser);
      c.detach(Prog::skb_pass, "m", AT::sk_skb_stream_parser);
      c.detach(Prog::msg_pass, "m", AT::sk_msg_verdict);
      c.attach(Prog::msg_pass, "m", AT::sk_msg_verdict);
      c.attach(Prog::msg_pass2, "m", AT::sk_msg_verdict);
      c.detach(Prog::msg_pass, "m", AT::sk_msg_verdict);
      c.detach(Prog::msg_pass2, "m", AT::sk_msg_verdict);
      c.attach(Prog::msg_pass, "st", AT::sk_msg_verdict);
      c.attach(Prog::skb_pass, "st", AT::sk_skb_verdict);
    });
  }
}

// §2.6 the sk_storage syscall errors.
void sk_storage_rules() {
  reg("sk_storage errors", {sk_storage("st", 8)}, [](Ctx& c) {
    int a = c.unix_pair(SOCK_STREAM, "a").first;
    int f = c.file("devnull");
    int closed = c.closed_fd();
    for (int fd : {-1, INT_MAX, closed, f}) {
      c.st_update("st", fd, 1);
      c.st_lookup("st", fd);
      c.st_delete("st", fd);
    }
    c.st_update("st", INT_MAX, 1, BAD_FLAGS);
    c.st_update("st", INT_MAX, 1, LOCK_FLAG);
    c.st_update("st", f, 1, BAD_FLAGS);
    c.st_update("st", a, 1, BAD_FLAGS);
    c.st_update("st", a, 1, LOCK_FLAG);
    c.st_update("st", a, 1, 8);
    c.st_lookup("st", a);
    c.st_delete("st", a);
    c.st_next("st");
  });
  reg("sk_storage on any socket", {sk_storage("st", 4)}, [](Ctx& c) {
    int fds[] = {c.raw("raw"), c.unix_pair(SOCK_SEQPACKET, "seqpacket").first,
                 c.tcp_socket(AF_INET, Tcp::unbound, "tcp.unbound"),
                 c.tcp_socket(AF_INET6, Tcp::listen, "tcp6.listener"),
                 c.udp(AF_INET, Udp::unbound, "udp.unbound")};
    uint64_t v = 1;
    for (int fd : fds) c.st_update("st", fd, v++);
    for (int fd : fds) c.st_lookup("st", fd);
  });
}

struct Init {
  Init() {
    per_kind_and_type();
    per_kind_psock();
    entry_checks();
    map_walks();
    attach_rules();
    sk_storage_rules();
  }
} init;

}  // namespace
}  // namespace conformance
