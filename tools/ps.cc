// sockshim ps [--json]: the processes running under the shim that this user
// owns, grouped by domain.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/commands.h"
#include "tools/control_client.h"
#include "tools/table.h"

namespace sockshim::tools {
namespace {

constexpr const char kPsUsage[] =
    "usage: sockshim ps [--json]\n"
    "\n"
    "Lists the processes of this user running with the shim (those with a control\n"
    "socket in the runtime directory), grouped by domain: a line\n"
    "'== domain KEY (members PID...; DIR)' (or '== no domain'), then its processes:\n"
    "PID, COMMAND, POLICY, SOCKETS (tracked sockets), PSOCKS (sockets in a map),\n"
    "UPTIME. --json prints one JSON array of the processes' info documents instead,\n"
    "those of one domain next to each other.\n";

using nlohmann::json;

// What groups processes: the domain's key, and whether this process is
// attached to it or runs without it (its error).
std::string group_of(const json& info) {
  const json& d = info.contains("domain") ? info["domain"] : json(nullptr);
  if (!d.is_object()) return {};
  std::string group = d.value("key", "");
  if (d["error"].is_string()) group += '\n' + d["error"].get<std::string>();
  return group;
}

std::string heading(const json& info) {
  const json& d = info.contains("domain") ? info["domain"] : json(nullptr);
  if (!d.is_object()) return "== no domain";
  std::string line = "== domain " + one_line(d.value("key", ""), 200);
  if (d["error"].is_string())
    return line + " (not attached: " + one_line(d["error"].get<std::string>(), 400) + ")";
  std::string pids;
  for (const json& m : d.value("members", json::array()))
    pids += (pids.empty() ? "" : " ") + std::to_string(m.value("pid", 0));
  return line + " (members " + pids + "; " + one_line(d.value("dir", ""), 200) + ")";
}

}  // namespace

int ps_main(int argc, char** argv) {
  bool as_json = false;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--json") == 0) {
      as_json = true;
    } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(kPsUsage, stdout);
      return 0;
    } else {
      fprintf(stderr, "sockshim ps: unknown argument '%s'\n%s", argv[i], kPsUsage);
      return kExitUsage;
    }
  }
  // Domains by key; processes without one last. Within a group, by pid.
  std::map<std::string, std::vector<json>> groups;
  for (const Peer& peer : list_peers()) {
    try {
      json info = call(peer, "info");
      groups[group_of(info)].push_back(std::move(info));
    } catch (const std::exception&) {
      continue;  // exited, or not answering: not a live shim process
    }
  }
  std::vector<const std::vector<json>*> order;
  for (const auto& [group, infos] : groups)
    if (!group.empty()) order.push_back(&infos);
  if (groups.count("")) order.push_back(&groups[""]);

  if (as_json) {
    json all = json::array();
    for (const auto* infos : order)
      for (const json& info : *infos) all.push_back(info);
    printf("%s\n", all.dump(2).c_str());
    return 0;
  }
  Table table({"PID", "COMMAND", "POLICY", "SOCKETS", "PSOCKS", "UPTIME"});
  for (const auto* infos : order)
    for (const json& info : *infos)
      table.add({std::to_string(info.value("pid", 0)), one_line(info.value("command", ""), 48),
                 info["policy"].is_string() ? info["policy"].get<std::string>() : "-",
                 std::to_string(info.value("sockets", 0)), std::to_string(info.value("psocks", 0)),
                 format_duration(info.value("uptime_seconds", 0LL))});
  // The table's lines, with each group's heading before its first process
  // (the last answer's member list is the freshest).
  std::string text = table.render();
  size_t pos = text.find('\n') + 1;
  std::string out = text.substr(0, pos);
  for (const auto* infos : order) {
    out += heading(infos->back()) + '\n';
    for (size_t i = 0; i < infos->size(); ++i) {
      size_t end = text.find('\n', pos) + 1;
      out += text.substr(pos, end - pos);
      pos = end;
    }
  }
  fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace sockshim::tools
