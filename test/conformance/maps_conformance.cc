// Runs every scenario against the kernel and through sockshim and compares.
// Prints PASS|FAIL <name>; exits 1 if any scenario failed or the programs did
// not load, 77 (skip) when the kernel refuses bpf() here.
// Usage: maps_conformance PROGS.bpf.o [-v] [name-substring]
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "test/conformance/conformance.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

namespace conformance {

std::vector<Scenario>& scenarios() {
  static std::vector<Scenario> s;
  return s;
}

std::string errno_name(int e) {
  switch (e) {
    case EINVAL:
      return "EINVAL";
    case EBADF:
      return "EBADF";
    case ENOTSOCK:
      return "ENOTSOCK";
    case EOPNOTSUPP:
      return "EOPNOTSUPP";
    case EEXIST:
      return "EEXIST";
    case ENOENT:
      return "ENOENT";
    case E2BIG:
      return "E2BIG";
    case ENOSPC:
      return "ENOSPC";
    case EBUSY:
      return "EBUSY";
    case EPERM:
      return "EPERM";
    case ENOMEM:
      return "ENOMEM";
    case EFAULT:
      return "EFAULT";
    case 524:
      return "ENOTSUPP";
    default:
      return "errno " + std::to_string(e);
  }
}

namespace {

uint64_t so_cookie(int fd) {
  uint64_t c = 0;
  socklen_t len = sizeof c;
  return getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len) == 0 ? c : 0;
}

socklen_t loopback(int family, sockaddr_storage* ss) {
  *ss = {};
  if (family == AF_INET) {
    auto* a = reinterpret_cast<sockaddr_in*>(ss);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof *a;
  }
  auto* a = reinterpret_cast<sockaddr_in6*>(ss);
  a->sin6_family = AF_INET6;
  a->sin6_addr = in6addr_loopback;
  return sizeof *a;
}

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string(what) + ": " + strerror(errno));
}

}  // namespace

Ctx::Ctx(Backend& b, const std::vector<MapDef>& maps) : b_(b), maps_(maps) {
  create_result_ = b_.create_maps(maps);
  if (create_result_) trace.push_back("create maps -> " + result(create_result_));
}

Ctx::~Ctx() {
  for (auto& [fd, label] : fds_) ::close(fd);
  b_.free_maps();
}

int Ctx::own(int fd, const std::string& label) {
  check(fd >= 0, label.c_str());
  fds_[fd] = label;
  closed_.erase(fd);
  if (uint64_t c = so_cookie(fd)) cookies_.emplace(c, label);
  return fd;
}

Ctx::TcpConn Ctx::tcp(int family, const std::string& label) {
  TcpConn c;
  c.listener = tcp_socket(family, Tcp::listen, label + ".listener");
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  check(getsockname(c.listener, reinterpret_cast<sockaddr*>(&ss), &len) == 0, "getsockname");
  c.client = own(socket(family, SOCK_STREAM, 0), label + ".client");
  check(connect(c.client, reinterpret_cast<sockaddr*>(&ss), len) == 0, "connect");
  c.server = own(accept(c.listener, nullptr, nullptr), label + ".server");
  return c;
}

int Ctx::tcp_socket(int family, Tcp state, const std::string& label) {
  int fd = own(socket(family, SOCK_STREAM, 0), label);
  if (state == Tcp::unbound) return fd;
  sockaddr_storage ss;
  socklen_t len = loopback(family, &ss);
  check(bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0, "bind");
  if (state == Tcp::listen) check(listen(fd, 16) == 0, "listen");
  return fd;
}

int Ctx::udp(int family, Udp state, const std::string& label) {
  int fd = own(socket(family, SOCK_DGRAM, 0), label);
  sockaddr_storage ss;
  socklen_t len = loopback(family, &ss);
  if (state == Udp::bound) check(bind(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0, "bind");
  if (state == Udp::connected) {
    reinterpret_cast<sockaddr_in*>(&ss)->sin_port = htons(9);  // same offset in v4 and v6
    check(connect(fd, reinterpret_cast<sockaddr*>(&ss), len) == 0, "connect");
  }
  return fd;
}

std::pair<int, int> Ctx::unix_pair(int type, const std::string& label) {
  int sv[2];
  check(socketpair(AF_UNIX, type, 0, sv) == 0, "socketpair");
  own(sv[0], label + ".a");
  own(sv[1], label + ".b");
  return {sv[0], sv[1]};
}

int Ctx::unix_socket(int type, const std::string& label) {
  return own(socket(AF_UNIX, type, 0), label);
}

int Ctx::unix_listener(const std::string& label) {
  int fd = own(socket(AF_UNIX, SOCK_STREAM, 0), label);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  // Autobind to an abstract address.
  check(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(sa_family_t)) == 0, "bind");
  check(listen(fd, 4) == 0, "listen");
  return fd;
}

int Ctx::raw(const std::string& label) {
  return own(socket(AF_INET, SOCK_RAW, IPPROTO_ICMP), label);
}

int Ctx::file(const std::string& label) {
  return own(open("/dev/null", O_RDONLY), label);
}

int Ctx::closed_fd() {
  int fd = open("/dev/null", O_RDONLY);
  ::close(fd);
  closed_.insert(fd);
  return fd;
}

int Ctx::dup(int fd, const std::string& label) {
  return own(::dup(fd), label);
}

void Ctx::close(int fd) {
  trace.push_back("close " + fd_name(fd));
  fds_.erase(fd);
  ::close(fd);
}

void Ctx::shutdown(int fd, int how) {
  trace.push_back("shutdown " + fd_name(fd));
  ::shutdown(fd, how);
}

void Ctx::reset(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  trace.push_back("reset " + fd_name(fd));
  fds_.erase(fd);
  ::close(fd);
}

void Ctx::settle() {
  usleep(20000);
}

std::string Ctx::fd_name(int fd) const {
  auto it = fds_.find(fd);
  if (it != fds_.end()) return it->second;
  if (closed_.count(fd)) return "closed fd";
  return "fd " + std::to_string(fd);
}

std::string Ctx::cookie_name(uint64_t c) const {
  auto it = cookies_.find(c);
  return it != cookies_.end() ? "cookie(" + it->second + ")" : "unknown cookie";
}

std::string Ctx::result(int r) const {
  return r == 0 ? "0" : "-" + errno_name(-r);
}

std::string Ctx::key_str(const Key& key) const {
  std::string s;
  for (size_t i = 0; i < key.size(); i += 4) {
    uint32_t v = 0;
    std::memcpy(&v, &key[i], std::min<size_t>(4, key.size() - i));
    s += (i ? "," : "") + std::to_string(v);
  }
  return "[" + s + "]";
}

const MapDef& Ctx::def(const std::string& map) const {
  for (const MapDef& d : maps_)
    if (d.name == map) return d;
  throw std::runtime_error("no map " + map);
}

static const char* flags_name(uint64_t f) {
  switch (f) {
    case 0:
      return "ANY";
    case 1:
      return "NOEXIST";
    case 2:
      return "EXIST";
    case 3:
      return "flags=3";
    case 4:
      return "F_LOCK";
    default:
      return "flags=?";
  }
}

int Ctx::update(const std::string& map, const Key& key, int fd, uint64_t flags) {
  uint64_t v64 = static_cast<uint32_t>(fd);
  if (fd < 0) v64 = static_cast<uint64_t>(static_cast<int64_t>(fd));
  int r = update_value(map, key, v64, flags);
  trace.back() = "update " + map + key_str(key) + " = " + fd_name(fd) + " " + flags_name(flags) +
                 " -> " + result(r);
  return r;
}

int Ctx::update_value(const std::string& map, const Key& key, uint64_t value, uint64_t flags) {
  int r;
  if (def(map).value_size == 4) {
    uint32_t v = static_cast<uint32_t>(value);
    r = b_.update(map, key.data(), &v, flags);
  } else {
    r = b_.update(map, key.data(), &value, flags);
  }
  trace.push_back("update " + map + key_str(key) + " = value " + std::to_string(value) + " " +
                  flags_name(flags) + " -> " + result(r));
  return r;
}

int Ctx::lookup(const std::string& map, const Key& key) {
  uint64_t v = 0;
  int r = b_.lookup(map, key.data(), &v);
  trace.push_back("lookup " + map + key_str(key) + " -> " + (r == 0 ? cookie_name(v) : result(r)));
  return r;
}

int Ctx::del(const std::string& map, const Key& key) {
  int r = b_.del(map, key.data());
  trace.push_back("delete " + map + key_str(key) + " -> " + result(r));
  return r;
}

int Ctx::next(const std::string& map, const Key* key) {
  Key n(def(map).key_size);
  int r = b_.next_key(map, key ? key->data() : nullptr, n.data());
  trace.push_back("next " + map + (key ? key_str(*key) : "NULL") + " -> " +
                  (r == 0 ? key_str(n) : result(r)));
  return r;
}

void Ctx::walk(const std::string& map) {
  Key cur(def(map).key_size), n(def(map).key_size);
  std::string s;
  const void* prev = nullptr;
  int r, steps = 0;
  while ((r = b_.next_key(map, prev, n.data())) == 0 && ++steps < 10000) {
    s += key_str(n);
    cur = n;
    prev = cur.data();
  }
  trace.push_back("walk " + map + ": " + s + " then " + result(r));
}

static const char* prog_name(Prog p) {
  switch (p) {
    case Prog::msg_pass:
      return "msg_pass";
    case Prog::msg_pass2:
      return "msg_pass2";
    case Prog::skb_parser:
      return "skb_parser";
    case Prog::skb_pass:
      return "skb_pass";
    case Prog::skb_pass2:
      return "skb_pass2";
  }
  return "?";
}

static const char* attach_name(AttachType t) {
  switch (t) {
    case AttachType::sk_msg_verdict:
      return "SK_MSG_VERDICT";
    case AttachType::sk_skb_stream_parser:
      return "STREAM_PARSER";
    case AttachType::sk_skb_stream_verdict:
      return "STREAM_VERDICT";
    case AttachType::sk_skb_verdict:
      return "SKB_VERDICT";
  }
  return "?";
}

int Ctx::attach(Prog p, const std::string& map, AttachType t) {
  int r = b_.attach(p, map, t);
  trace.push_back(std::string("attach ") + prog_name(p) + " " + map + " " + attach_name(t) +
                  " -> " + result(r));
  return r;
}

int Ctx::detach(Prog p, const std::string& map, AttachType t) {
  int r = b_.detach(p, map, t);
  trace.push_back(std::string("detach ") + prog_name(p) + " " + map + " " + attach_name(t) +
                  " -> " + result(r));
  return r;
}

int Ctx::st_update(const std::string& map, int fd, uint64_t v, uint64_t flags) {
  std::vector<uint8_t> value(def(map).value_size);
  std::memcpy(value.data(), &v, std::min<size_t>(8, value.size()));
  int r = b_.update(map, &fd, value.data(), flags);
  trace.push_back("st_update " + map + "[" + fd_name(fd) + "] = " + std::to_string(v) + " " +
                  flags_name(flags) + " -> " + result(r));
  return r;
}

int Ctx::st_lookup(const std::string& map, int fd) {
  std::vector<uint8_t> value(def(map).value_size);
  int r = b_.lookup(map, &fd, value.data());
  uint64_t v = 0;
  std::memcpy(&v, value.data(), std::min<size_t>(8, value.size()));
  trace.push_back("st_lookup " + map + "[" + fd_name(fd) + "] -> " +
                  (r == 0 ? std::to_string(v) : result(r)));
  return r;
}

int Ctx::st_delete(const std::string& map, int fd) {
  int r = b_.del(map, &fd);
  trace.push_back("st_delete " + map + "[" + fd_name(fd) + "] -> " + result(r));
  return r;
}

int Ctx::st_next(const std::string& map) {
  int n = 0;
  int r = b_.next_key(map, nullptr, &n);
  trace.push_back("st_next " + map + " -> " + result(r));
  return r;
}

}  // namespace conformance

using namespace conformance;

namespace {

std::vector<std::string> run(Backend& b, const Scenario& s) {
  try {
    Ctx c(b, s.maps);
    s.body(c);
    return c.trace;
  } catch (const std::exception& e) {
    return {std::string("setup failed: ") + e.what()};
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PROGS.bpf.o [-v] [name-substring]\n", argv[0]);
    return 2;
  }
  bool verbose = false;
  std::string filter;
  for (int i = 2; i < argc; ++i) {
    if (std::strcmp(argv[i], "-v") == 0)
      verbose = true;
    else
      filter = argv[i];
  }
  rlimit rl{4096, 4096};
  setrlimit(RLIMIT_NOFILE, &rl);

  std::string why;
  KernelOpen opened;
  std::unique_ptr<Backend> kernel = make_kernel_backend(argv[1], &opened, &why);
  if (!kernel) return exit_without_kernel(opened, why);
  std::unique_ptr<Backend> shim = make_shim_backend();
  int failed = 0, passed = 0;
  for (const Scenario& s : scenarios()) {
    if (!filter.empty() && s.name.find(filter) == std::string::npos) continue;
    std::vector<std::string> want = run(*kernel, s);
    std::vector<std::string> got = run(*shim, s);
    bool ok = want == got;
    std::printf("%s %s\n", ok ? "PASS" : "FAIL", s.name.c_str());
    if (!ok || verbose) {
      size_t n = std::max(want.size(), got.size());
      for (size_t i = 0; i < n; ++i) {
        const std::string& w = i < want.size() ? want[i] : "(nothing)";
        const std::string& g = i < got.size() ? got[i] : "(nothing)";
        if (w == g)
          std::printf("      %s\n", w.c_str());
        else
          std::printf("    kernel: %s\n    shim:   %s\n", w.c_str(), g.c_str());
      }
    }
    ok ? ++passed : ++failed;
  }
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
