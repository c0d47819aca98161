#include "core/control/control_commands.h"

#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <vector>

#include "core/control/control_maps.h"
#include "core/control/control_programs.h"
#include "core/control/control_psocks.h"
#include "core/control/domain_reload.h"
#include "core/control/protocol.h"
#include "core/domain/domain.h"
#include "core/maps/loaded_policy.h"
#include "core/psock/psock.h"
#include "core/sock/registry.h"
#include "core/sock/sock_query.h"

namespace sockshim::control {
namespace {

using nlohmann::json;

int64_t g_start_time = [] {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec};
}();

std::string command_line() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!raw.empty() && raw.back() == '\0') raw.pop_back();
  for (char& c : raw)
    if (c == '\0') c = ' ';
  return raw;
}

const char* family_name(int family) {
  switch (family) {
    case AF_INET:
      return "AF_INET";
    case AF_INET6:
      return "AF_INET6";
    case AF_UNIX:
      return "AF_UNIX";
    default:
      return "other";
  }
}

const char* type_name(int type) {
  switch (type) {
    case SOCK_STREAM:
      return "SOCK_STREAM";
    case SOCK_DGRAM:
      return "SOCK_DGRAM";
    case SOCK_SEQPACKET:
      return "SOCK_SEQPACKET";
    case SOCK_RAW:
      return "SOCK_RAW";
    default:
      return "other";
  }
}

// Every tracked socket once, with all the fds that refer to it.
json dump_sockets() {
  std::map<Socket*, std::vector<int>> fds;
  std::vector<Socket*> order;
  for (int fd = 0, top = registry::high_water(); fd <= top; ++fd) {
    Socket* s = registry::peek(fd);
    if (!s || registry::is_internal(s)) continue;
    auto [it, fresh] = fds.try_emplace(s);
    if (fresh) order.push_back(s);
    it->second.push_back(fd);
  }
  json out = json::array();
  for (Socket* s : order) {
    const std::vector<int>& list = fds[s];
    SocketRef ref = registry::get(list.front());
    if (ref.get() != s) continue;  // closed while we looked
    SockAddr local, remote;
    TcpState state = sock_state_for_dump(list.front(), *s);
    bool shut_rd, shut_wr;
    {
      std::lock_guard g(s->lock());
      local = s->local;
      remote = s->remote;
      shut_rd = s->shut_rd;
      shut_wr = s->shut_wr;
    }
    out.push_back({{"fds", list},
                   {"cookie", s->cookie},
                   {"family", family_name(s->family)},
                   {"type", type_name(s->type)},
                   {"protocol", s->protocol},
                   {"state", tcp_state_name(state)},
                   {"local", format_address(local)},
                   {"remote", format_address(remote)},
                   {"nonblocking", s->nonblocking.load(std::memory_order_relaxed)},
                   {"shutdown", shut_rd && shut_wr ? "RDWR"
                                : shut_rd          ? "RD"
                                : shut_wr          ? "WR"
                                                   : ""},
                   {"psock", s->psock.load(std::memory_order_acquire) != nullptr}});
  }
  return out;
}

// The process's domain and its live members, or null when it has none.
json domain_info() {
  domain::DomainState d = domain::domain_state();
  if (d.key.empty()) return nullptr;
  json members = json::array();
  for (const domain::Member& m : d.members)
    members.push_back({{"pid", m.pid},
                       {"start_time", m.start_time},
                       {"policy", m.policy.empty() ? json(nullptr) : json(m.policy)},
                       {"comm", m.comm}});
  return {{"key", d.key},
          {"dir", d.dir},
          {"generation", d.generation},
          {"error", d.error.empty() ? json(nullptr) : json(d.error)},
          {"members", members}};
}

json info() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  registry::Census census = registry::census();
  std::shared_ptr<const LoadedPolicy> lp = current_policy();
  return {{"pid", getpid()},
          {"command", command_line()},
          {"policy", lp ? json(lp->path) : json(nullptr)},
          {"sockets", census.sockets},
          {"fds", census.fds},
          {"psocks", psock_count()},
          {"uptime_seconds", ts.tv_sec - g_start_time},
          {"domain", domain_info()}};
}

const std::vector<std::string> kSections = {"maps", "sockets", "storage", "stats"};

json dump(const json& args) {
  std::vector<std::string> sections = kSections;
  if (args.contains("sections")) {
    const json& wanted = args.at("sections");
    if (!wanted.is_array())
      throw ControlError("EINVAL", "/args/sections: expected an array of section names");
    sections.clear();
    for (const json& w : wanted) {
      if (!w.is_string() ||
          std::find(kSections.begin(), kSections.end(), w.get<std::string>()) == kSections.end())
        throw ControlError("EINVAL",
                           "/args/sections: expected one of \"maps\", \"sockets\", \"storage\", "
                           "\"stats\", got " +
                               w.dump());
      sections.push_back(w.get<std::string>());
    }
  }
  json out = json::object();
  out["process"] = info();
  for (const std::string& s : sections) {
    if (s == "maps") {
      out["maps"] = dump_maps();
      out["domain_maps"] = dump_domain_maps();
    }
    if (s == "sockets") out["sockets"] = dump_sockets();
    if (s == "storage") out["storage"] = dump_storage();
    if (s == "stats") {
      out["psocks"] = dump_psocks();
      out["programs"] = dump_programs();
    }
  }
  return out;
}

// Command lines and unix paths are bytes, not always UTF-8: never fail on them.
std::string to_line(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// The maps of the policy now running, and which kept their sockets.
json reloaded(const std::string& path, const std::vector<std::string>& kept) {
  std::shared_ptr<const LoadedPolicy> now = current_policy();
  json maps = json::array();
  for (const policy::MapSpec& m : now->policy->maps) maps.push_back(m.name);
  return {{"policy", path}, {"maps", maps}, {"kept", kept}};
}

// args: {"policy": PATH} (absolute; default: the file the process runs); in a
// domain the other members are then asked to run it too. Or
// {"domain_generation": G}: run the policy another member's reload published.
json reload(const json& args) {
  std::vector<std::string> errors, kept;
  if (args.contains("domain_generation")) {
    if (!args["domain_generation"].is_number_unsigned())
      throw ControlError("EINVAL", "/args/domain_generation: expected a generation number");
    uint64_t want = args["domain_generation"], gen = 0;
    if (!adopt_domain_policy(&errors, &kept, &gen)) {
      std::string message = "the domain's policy cannot run here, the old one stays:";
      for (const std::string& e : errors) message += "\n" + e;
      throw ControlError("EINVAL", message);
    }
    if (gen < want)
      throw ControlError("ESTALE", "the domain's policy is generation " + std::to_string(gen) +
                                       ", not " + std::to_string(want));
    return reloaded(current_policy()->path, kept);
  }
  std::shared_ptr<const LoadedPolicy> lp = current_policy();
  std::string path;
  if (args.contains("policy")) {
    if (!args["policy"].is_string() || args["policy"].get<std::string>().empty())
      throw ControlError("EINVAL", "/args/policy: expected the policy file's path");
    path = args["policy"];
  } else if (lp) {
    path = lp->path;
  } else {
    throw ControlError("EINVAL", "/args/policy: the process runs without a policy; name one");
  }
  uint64_t gen = 0;
  if (!reload_policy(path, &errors, &kept, &gen)) {
    std::string message = "policy refused, the old one stays:";
    for (const std::string& e : errors) message += "\n" + e;
    throw ControlError("EINVAL", message);
  }
  json out = reloaded(path, kept);
  if (gen) out["domain"] = {{"generation", gen}, {"members", reload_members(gen)}};
  return out;
}

json error_response(const std::string& code, const std::string& message) {
  return {{"version", kProtocolVersion},
          {"ok", false},
          {"error", {{"code", code}, {"message", message}}}};
}

}  // namespace

std::string handle_request(const std::string& line) noexcept {
  try {
    json request = json::parse(line, nullptr, false);
    if (request.is_discarded())
      return to_line(error_response("EBADMSG", "request is not valid JSON"));
    if (!request.is_object())
      return to_line(error_response("EBADMSG", "request must be a JSON object"));
    if (!request.contains("version") || request["version"] != kProtocolVersion)
      return to_line(error_response("EPROTONOSUPPORT", "/version: expected 1"));
    if (!request.contains("command") || !request["command"].is_string())
      return to_line(error_response("EINVAL", "/command: expected a string"));
    json args = request.value("args", json::object());
    if (!args.is_object()) return to_line(error_response("EINVAL", "/args: expected an object"));
    std::string command = request["command"];
    json result;
    if (command == "info")
      result = info();
    else if (command == "dump")
      result = dump(args);
    else if (command == "map")
      result = map_op(args);
    else if (command == "reload")
      result = reload(args);
    else
      return to_line(error_response("EOPNOTSUPP", "/command: unknown command \"" + command +
                                                      "\"; expected one of \"info\", \"dump\", "
                                                      "\"map\", \"reload\""));
    return to_line(
        json{{"version", kProtocolVersion}, {"ok", true}, {"result", std::move(result)}});
  } catch (const ControlError& e) {
    return to_line(error_response(e.code, e.what()));
  } catch (const std::exception& e) {
    return to_line(error_response("EIO", std::string("internal error: ") + e.what()));
  } catch (...) {
    return R"({"version":1,"ok":false,"error":{"code":"EIO","message":"internal error"}})";
  }
}

}  // namespace sockshim::control
