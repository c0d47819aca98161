#include "core/control/socket_index.h"

#include <arpa/inet.h>

#include "core/sock/registry.h"
#include "core/sock/sock_query.h"

namespace sockshim::control {

using nlohmann::json;

namespace {

std::string address_text(const SockAddr& a) {
  if (a.addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a.addr);
    return ip4_text(reinterpret_cast<const unsigned char*>(&in->sin_addr)) + ":" +
           std::to_string(ntohs(in->sin_port));
  }
  if (a.addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.addr);
    return "[" + ip6_text(reinterpret_cast<const unsigned char*>(&in6->sin6_addr)) +
           "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "";
}

}  // namespace

std::string ip4_text(const unsigned char* p) {
  char buf[INET_ADDRSTRLEN];
  return inet_ntop(AF_INET, p, buf, sizeof buf);
}

std::string ip6_text(const unsigned char* p) {
  char buf[INET6_ADDRSTRLEN];
  return inet_ntop(AF_INET6, p, buf, sizeof buf);
}

SocketIndex::SocketIndex() {
  for (int fd = 0, top = registry::high_water(); fd <= top; ++fd) {
    Socket* s = registry::peek(fd);
    if (!s || registry::is_internal(s)) continue;
    Entry& e = by_cookie[s->cookie];
    e.sk = s;
    e.fds.push_back(fd);
  }
}

json SocketIndex::describe(uint64_t cookie) const {
  json out = {{"cookie", cookie}};
  auto it = by_cookie.find(cookie);
  if (it == by_cookie.end()) {
    out["fds"] = json::array();
    return out;
  }
  SocketRef ref = registry::get(it->second.fds.front());
  out["fds"] = it->second.fds;
  if (ref.get() == it->second.sk) {
    TcpState state = sock_state_for_dump(it->second.fds.front(), *ref.get());
    std::lock_guard g(ref->lock());
    out["local"] = address_text(ref->local);
    out["remote"] = address_text(ref->remote);
    out["state"] = tcp_state_name(state);
  }
  return out;
}

}  // namespace sockshim::control
