// Talking to running shims through their control sockets.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace sockshim::tools {

struct Peer {
  int pid;
  std::string path;
};

// The control sockets of this user's live processes, by pid. Sockets left by
// processes that no longer exist are removed on the way.
std::vector<Peer> list_peers();

// The control socket of one pid; throws std::runtime_error with a message for
// the user when there is none.
Peer find_peer(int pid);

// Sends one request and returns the "result" of a successful response; throws
// std::runtime_error("<code>: <message>") on an error response or a failure.
nlohmann::json call(const Peer& peer, const std::string& command,
                    const nlohmann::json& args = nlohmann::json::object());

}  // namespace sockshim::tools
