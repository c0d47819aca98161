// The map conformance harness: a scenario is a function of a Ctx; it runs once
// against the kernel and once through sockshim, each run on fresh sockets of
// the same kinds, and the two traces of outcomes must be identical. Sockets
// appear in a trace by label, cookies by the label of the socket whose
// SO_COOKIE they equal.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "policy/spec.h"
#include "test/conformance/kernel_side.h"

namespace conformance {

using sockshim::policy::AttachType;
using sockshim::policy::MapType;

struct MapDef {
  std::string name;
  MapType type = MapType::sockmap;
  uint32_t max_entries = 0;
  uint32_t key_size = 4;
  uint32_t value_size = 8;
};

inline MapDef sockmap(std::string name, uint32_t max, uint32_t value_size = 8) {
  return {std::move(name), MapType::sockmap, max, 4, value_size};
}
inline MapDef sockhash(std::string name, uint32_t max, uint32_t key_size = 4,
                       uint32_t value_size = 8) {
  return {std::move(name), MapType::sockhash, max, key_size, value_size};
}
inline MapDef sk_storage(std::string name, uint32_t value_size = 8) {
  return {std::move(name), MapType::sk_storage, 0, 4, value_size};
}

// The programs of sockmap_progs.bpf.c.
enum class Prog { msg_pass, msg_pass2, skb_parser, skb_pass, skb_pass2 };

// One side: the kernel or sockshim. Every call returns 0 or -errno.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;
  virtual int create_maps(const std::vector<MapDef>& maps) = 0;
  virtual void free_maps() = 0;
  virtual int update(const std::string& map, const void* key, const void* value,
                     uint64_t flags) = 0;
  virtual int lookup(const std::string& map, const void* key, void* value) = 0;
  virtual int del(const std::string& map, const void* key) = 0;
  virtual int next_key(const std::string& map, const void* key, void* next) = 0;
  virtual int attach(Prog p, const std::string& map, AttachType t) = 0;
  virtual int detach(Prog p, const std::string& map, AttachType t) = 0;
};

// Returns null, with *status refused or failed (kernel_side.h) and *why, when
// the kernel side cannot run.
std::unique_ptr<Backend> make_kernel_backend(const char* progs_obj, KernelOpen* status,
                                             std::string* why);
std::unique_ptr<Backend> make_shim_backend();

using Key = std::vector<uint8_t>;
inline Key k(uint32_t v) {
  Key key(4);
  for (int i = 0; i < 4; ++i) key[i] = static_cast<uint8_t>(v >> (8 * i));
  return key;
}
inline Key k3(uint32_t a, uint32_t b, uint32_t c) {
  Key key = k(a), kb = k(b), kc = k(c);
  key.insert(key.end(), kb.begin(), kb.end());
  key.insert(key.end(), kc.begin(), kc.end());
  return key;
}

enum class Tcp { unbound, bound, listen };
enum class Udp { unbound, bound, connected };

// What a scenario does, recorded.
class Ctx {
 public:
  Ctx(Backend& b, const std::vector<MapDef>& maps);
  ~Ctx();
  std::vector<std::string> trace;

  // Sockets (labelled; closed at the end of the run).
  struct TcpConn {
    int listener, client, server;
  };
  TcpConn tcp(int family, const std::string& label);  // established on 127.0.0.1 / ::1
  int tcp_socket(int family, Tcp state, const std::string& label);
  int udp(int family, Udp state, const std::string& label);
  std::pair<int, int> unix_pair(int type, const std::string& label);
  int unix_socket(int type, const std::string& label);  // unbound, unconnected
  int unix_listener(const std::string& label);
  int raw(const std::string& label);
  int file(const std::string& label);
  int closed_fd();  // a number that is not an open fd right now
  int dup(int fd, const std::string& label);
  void close(int fd);
  void shutdown(int fd, int how);
  void reset(int fd);  // close with SO_LINGER 0: the peer gets an RST
  void settle();       // lets FIN/RST processing finish

  // Map operations; the value of a sockmap/sockhash update is the fd, sized
  // to the map's value_size.
  int update(const std::string& map, const Key& key, int fd, uint64_t flags = 0);
  int update_value(const std::string& map, const Key& key, uint64_t value, uint64_t flags = 0);
  int lookup(const std::string& map, const Key& key);
  int del(const std::string& map, const Key& key);
  int next(const std::string& map, const Key* key);
  void walk(const std::string& map);  // every get_next_key from NULL to ENOENT
  int attach(Prog p, const std::string& map, AttachType t);
  int detach(Prog p, const std::string& map, AttachType t);
  // sk_storage (key = fd)
  int st_update(const std::string& map, int fd, uint64_t v, uint64_t flags = 0);
  int st_lookup(const std::string& map, int fd);
  int st_delete(const std::string& map, int fd);
  int st_next(const std::string& map);
  void note(const std::string& s) { trace.push_back(s); }

 private:
  std::string fd_name(int fd) const;
  std::string cookie_name(uint64_t c) const;
  std::string result(int r) const;
  std::string key_str(const Key& key) const;
  int own(int fd, const std::string& label);
  const MapDef& def(const std::string& map) const;

  Backend& b_;
  std::vector<MapDef> maps_;
  std::map<int, std::string> fds_;           // open fds -> label
  std::map<uint64_t, std::string> cookies_;  // every socket's cookie -> label
  std::set<int> closed_;                     // numbers from closed_fd()
  int create_result_ = 0;
};

struct Scenario {
  std::string name;
  std::vector<MapDef> maps;
  std::function<void(Ctx&)> body;
};
std::vector<Scenario>& scenarios();
struct Register {
  Register(std::string name, std::vector<MapDef> maps, std::function<void(Ctx&)> body) {
    scenarios().push_back({std::move(name), std::move(maps), body});
  }
};

std::string errno_name(int e);

}  // namespace conformance
