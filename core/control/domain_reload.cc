#include "core/control/domain_reload.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "core/control/protocol.h"
#include "core/domain/domain.h"
#include "core/sock/real.h"

namespace sockshim::control {
namespace {

using nlohmann::json;

int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1000000;
}

// One request to pid's control socket and its answer line; "" and *why on
// failure. Through the real calls: this is the shim talking, not the program.
std::string ask(pid_t pid, const std::string& request, int timeout_ms, std::string* why) {
  std::string path = runtime_dir() + "/" + std::to_string(pid) + kSocketSuffix;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) {
    *why = "its control socket path is too long";
    return {};
  }
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = real::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *why = strerror(errno);
    return {};
  }
  std::string answer;
  if (real::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    *why = errno == ENOENT || errno == ECONNREFUSED
               ? "no control socket (it runs the new policy from its next send or connection)"
               : strerror(errno);
  } else if (std::string line = request + "\n";
             real::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    *why = strerror(errno);
  } else {
    int64_t deadline = now_ms() + timeout_ms;
    char buf[4096];
    while (answer.find('\n') == std::string::npos) {
      pollfd p{fd, POLLIN, 0};
      int left = static_cast<int>(deadline - now_ms());
      if (left <= 0 || real::poll(&p, 1, left) <= 0) {
        *why = "no answer within " + std::to_string(timeout_ms) + " ms";
        answer.clear();
        break;
      }
      ssize_t n = real::read(fd, buf, sizeof buf);
      if (n <= 0) {
        *why = "it closed the connection without an answer";
        answer.clear();
        break;
      }
      answer.append(buf, static_cast<size_t>(n));
    }
  }
  real::close(fd);
  return answer;
}

}  // namespace

json reload_members(uint64_t gen, int timeout_ms) {
  json out = json::array();
  domain::DomainState d = domain::domain_state();
  const std::string request = json{{"version", kProtocolVersion},
                                   {"command", "reload"},
                                   {"args", {{"domain_generation", gen}}}}
                                  .dump();
  for (const domain::Member& m : d.members) {
    if (m.pid == getpid()) continue;
    std::string why;
    std::string line = ask(m.pid, request, timeout_ms, &why);
    json entry = {{"pid", m.pid}, {"reloaded", false}};
    if (!line.empty()) {
      json answer = json::parse(line, nullptr, false);
      if (answer.is_object() && answer.value("ok", false))
        entry["reloaded"] = true;
      else if (answer.is_object() && answer.contains("error") && answer["error"].is_object())
        why = answer["error"].value("message", "refused");
      else
        why = "an answer that is not the protocol's";
    }
    if (!entry["reloaded"].get<bool>()) entry["error"] = why;
    out.push_back(std::move(entry));
  }
  return out;
}

}  // namespace sockshim::control
