// The process's sockets as the dumps name them: by cookie, with their fds,
// addresses and TCP state.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/sock/socket.h"

namespace sockshim::control {

// The process's sockets by cookie, with their fds (a dump names sockets by both).
struct SocketIndex {
  struct Entry {
    std::vector<int> fds;
    Socket* sk = nullptr;
  };
  std::map<uint64_t, Entry> by_cookie;

  SocketIndex();

  // {"cookie", "fds", "local", "remote", "state"} of the socket with that cookie.
  nlohmann::json describe(uint64_t cookie) const;
};

// An IPv4 or IPv6 address (4 or 16 bytes, network order) as text.
std::string ip4_text(const unsigned char* p);
std::string ip6_text(const unsigned char* p);

}  // namespace sockshim::control
