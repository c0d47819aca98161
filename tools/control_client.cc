#include "tools/control_client.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "core/control/protocol.h"

namespace sockshim::tools {
namespace {

constexpr int kTimeoutMs = 5000;

bool process_exists(int pid) {
  return kill(pid, 0) == 0 || errno == EPERM;
}

class Connection {
 public:
  explicit Connection(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + strerror(errno));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) throw std::runtime_error(path + ": path too long");
    memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("cannot connect to " + path + ": " + strerror(errno));
  }
  ~Connection() { close(fd_); }

  void send_all(const std::string& data) {
    size_t off = 0;
    while (off < data.size()) {
      wait_for(POLLOUT);
      ssize_t n = send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::runtime_error(std::string("send: ") + strerror(errno));
      off += static_cast<size_t>(n);
    }
  }

  std::string read_line() {
    std::string out;
    char buf[65536];
    while (out.find('\n') == std::string::npos) {
      wait_for(POLLIN);
      ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::runtime_error(std::string("recv: ") + strerror(errno));
      if (n == 0) break;
      out.append(buf, static_cast<size_t>(n));
    }
    if (out.empty())
      throw std::runtime_error("the process closed the connection without answering");
    return out.substr(0, out.find('\n'));
  }

 private:
  void wait_for(short events) {
    pollfd p{fd_, events, 0};
    int r;
    while ((r = poll(&p, 1, kTimeoutMs)) < 0 && errno == EINTR) {
    }
    if (r == 0) throw std::runtime_error("no answer within 5 s");
  }
  int fd_;
};

}  // namespace

std::vector<Peer> list_peers() {
  std::vector<Peer> peers;
  std::error_code ec;
  const size_t suffix = strlen(control::kSocketSuffix);
  for (const auto& entry : std::filesystem::directory_iterator(control::runtime_dir(), ec)) {
    std::string name = entry.path().filename();
    if (name.size() <= suffix || !name.ends_with(control::kSocketSuffix)) continue;
    std::string digits = name.substr(0, name.size() - suffix);
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    int pid = std::stoi(digits);
    if (!process_exists(pid)) {
      unlink(entry.path().c_str());  // its process died without cleaning up
      continue;
    }
    peers.push_back({pid, entry.path()});
  }
  std::sort(peers.begin(), peers.end(), [](const Peer& a, const Peer& b) { return a.pid < b.pid; });
  return peers;
}

Peer find_peer(int pid) {
  std::string path = control::control_socket_path(control::runtime_dir(), pid);
  if (access(path.c_str(), F_OK) != 0) {
    if (errno == EACCES)
      throw std::runtime_error("cannot reach the control socket of pid " + std::to_string(pid) +
                               " in " + control::runtime_dir() +
                               ": Permission denied (another user's)");
    throw std::runtime_error("no sockshim control socket for pid " + std::to_string(pid) + " in " +
                             control::runtime_dir() +
                             " (is it running under the shim, as this user?)");
  }
  return {pid, path};
}

nlohmann::json call(const Peer& peer, const std::string& command, const nlohmann::json& args) {
  Connection c(peer.path);
  nlohmann::json request = {
      {"version", control::kProtocolVersion}, {"command", command}, {"args", args}};
  c.send_all(request.dump() + "\n");
  nlohmann::json response = nlohmann::json::parse(c.read_line(), nullptr, false);
  if (response.is_discarded() || !response.is_object())
    throw std::runtime_error("malformed answer from pid " + std::to_string(peer.pid));
  if (response.value("ok", false)) return response["result"];
  const nlohmann::json& e = response["error"];
  throw std::runtime_error(e.value("code", std::string("EIO")) + ": " +
                           e.value("message", std::string("unknown error")));
}

}  // namespace sockshim::tools
