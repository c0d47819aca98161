// Policies written as JSON text and map insertion through the C API, for the
// send-path tests; socket pairs and the redirect set-up come from test/support.
// The test binary holds the shim's hook objects, so socket(), connect(),
// send() and recv() go through the hooks as in a preloaded program.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "core/maps/loaded_policy.h"
#include "shim/sockshim.h"
#include "test/support/redirect.h"

namespace send_test {

using test_support::End;
using test_support::LoopbackPair;
using test_support::RedirectPairs;

// Loads a policy given as JSON text.
inline void load(const std::string& json) {
  char path[] = "/tmp/sockshim-send-test-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, json.data(), json.size()) == static_cast<ssize_t>(json.size()));
  ::close(fd);
  std::vector<std::string> errors;
  bool ok = sockshim::load_policy(path, &errors);
  unlink(path);
  for (const auto& e : errors) UNSCOPED_INFO(e);
  REQUIRE(ok);
}

// A policy with an sk_msg program "v" (the given rules) attached to sockmap
// "tx", an empty sockmap "redir" for targets, and sk_storage maps "runs" and
// "bytes" that the COUNT actions fill.
inline std::string msg_policy(const std::string& rules) {
  return R"({"version": 1,
  "maps": {
    "tx": {"type": "sockmap", "max_entries": 4},
    "redir": {"type": "sockmap", "max_entries": 4},
    "runs": {"type": "sk_storage", "flags": ["BPF_F_NO_PREALLOC"], "value": {"n": "u64"}},
    "bytes": {"type": "sk_storage", "flags": ["BPF_F_NO_PREALLOC"], "value": {"n": "u64"}}},
  "programs": {"v": {"type": "sk_msg", "rules": )" +
         rules + R"(}},
  "attach": [{"program": "v", "map": "tx", "attach_type": "BPF_SK_MSG_VERDICT"}]})";
}

// Actions counting each run and the sizes it saw.
inline const char* kCount =
    R"({"storage": {"map": "runs", "create": true, "add": {"n": 1}}},
       {"storage": {"map": "bytes", "create": true, "add": {"n": "size"}}})";

inline uint64_t storage(const char* map, int fd) {
  uint64_t v = 0;
  return sockshim_map_lookup_elem(map, &fd, &v) == 0 ? v : 0;
}

inline void insert(const char* map, uint32_t key, int fd) {
  uint64_t v = static_cast<uint64_t>(fd);
  REQUIRE(sockshim_map_update_elem(map, &key, &v, 0) == 0);
}

inline void remove(const char* map, uint32_t key) {
  REQUIRE(sockshim_map_delete_elem(map, &key) == 0);
}

inline void set_nonblock(int fd) {
  REQUIRE(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == 0);
}

// Reads until n bytes came or nothing came for timeout_ms.
inline std::string read_some(int fd, size_t n, int timeout_ms = 1000) {
  std::string out;
  while (out.size() < n) {
    pollfd pf{fd, POLLIN, 0};
    if (::poll(&pf, 1, timeout_ms) <= 0) break;
    char buf[65536];
    ssize_t r = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), MSG_DONTWAIT);
    if (r <= 0) break;
    out.append(buf, static_cast<size_t>(r));
  }
  return out;
}

// True when nothing is readable at fd within timeout_ms.
inline bool quiet(int fd, int timeout_ms = 100) {
  pollfd pf{fd, POLLIN, 0};
  return ::poll(&pf, 1, timeout_ms) == 0;
}

}  // namespace send_test
