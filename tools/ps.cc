// sockshim ps [--json]: the processes running under the shim that this user owns.
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "tools/commands.h"
#include "tools/control_client.h"
#include "tools/table.h"

namespace sockshim::tools {
namespace {

constexpr const char kPsUsage[] =
    "usage: sockshim ps [--json]\n"
    "\n"
    "Lists the processes of this user running with the shim (those with a control\n"
    "socket in the runtime directory): PID, COMMAND, POLICY, SOCKETS (tracked\n"
    "sockets), PSOCKS (sockets in a map), UPTIME. --json prints one JSON array of\n"
    "the processes' info documents instead.\n";

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
  nlohmann::json all = nlohmann::json::array();
  Table table({"PID", "COMMAND", "POLICY", "SOCKETS", "PSOCKS", "UPTIME"});
  for (const Peer& peer : list_peers()) {
    nlohmann::json info;
    try {
      info = call(peer, "info");
    } catch (const std::exception&) {
      continue;  // exited, or not answering: not a live shim process
    }
    all.push_back(info);
    table.add({std::to_string(peer.pid), one_line(info.value("command", ""), 48),
               info["policy"].is_string() ? info["policy"].get<std::string>() : "-",
               std::to_string(info.value("sockets", 0)), std::to_string(info.value("psocks", 0)),
               format_duration(info.value("uptime_seconds", 0LL))});
  }
  if (as_json)
    printf("%s\n", all.dump(2).c_str());
  else
    fputs(table.render().c_str(), stdout);
  return 0;
}

}  // namespace sockshim::tools
