// sockshim dump [PID] [SECTION...] [--json]: the live state of shimmed processes.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/commands.h"
#include "tools/control_client.h"
#include "tools/table.h"

namespace sockshim::tools {
namespace {

constexpr const char kDumpUsage[] =
    "usage: sockshim dump [PID] [SECTION...] [--json]\n"
    "\n"
    "Prints the live state of the process PID, or of every process of this user\n"
    "running under the shim. Sections (default: all):\n"
    "  sockets   every tracked socket: its fds, cookie (SO_COOKIE), family, type,\n"
    "            TCP state as the shim saw it, local and remote address, psock\n"
    "--json prints one JSON document: {\"processes\": [{\"process\": {...},\n"
    "\"sockets\": [...]}]}, keys as documented in README.md.\n"
    "\n"
    "exit status: 0, or 1 when PID has no control socket or answers with an error.\n";

std::string yes_no(bool b) {
  return b ? "yes" : "no";
}

void print_text(const nlohmann::json& dump) {
  const nlohmann::json& p = dump["process"];
  printf("== pid %d: %s (policy: %s)\n", p.value("pid", 0),
         one_line(p.value("command", ""), 72).c_str(),
         p["policy"].is_string() ? p["policy"].get<std::string>().c_str() : "none");
  if (dump.contains("sockets")) {
    printf("sockets\n");
    Table t({"FD", "COOKIE", "FAMILY", "TYPE", "STATE", "LOCAL", "REMOTE", "PSOCK"});
    for (const auto& s : dump["sockets"]) {
      std::string fds;
      for (const auto& fd : s["fds"])
        fds += (fds.empty() ? "" : ",") + std::to_string(fd.get<int>());
      t.add({fds, std::to_string(s.value("cookie", 0ULL)), s.value("family", ""),
             s.value("type", ""), s.value("state", ""),
             s.value("local", "-").empty() ? "-" : s.value("local", ""),
             s.value("remote", "").empty() ? "-" : s.value("remote", ""),
             yes_no(s.value("psock", false))});
    }
    fputs(t.render("  ").c_str(), stdout);
  }
}

}  // namespace

int dump_main(int argc, char** argv) {
  bool as_json = false;
  int pid = 0;
  nlohmann::json sections = nlohmann::json::array();
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--json") {
      as_json = true;
    } else if (arg == "-h" || arg == "--help") {
      fputs(kDumpUsage, stdout);
      return 0;
    } else if (!arg.empty() && arg.find_first_not_of("0123456789") == std::string::npos &&
               pid == 0 && sections.empty()) {
      pid = std::atoi(arg.c_str());
    } else if (!arg.empty() && arg[0] != '-') {
      sections.push_back(arg);
    } else {
      fprintf(stderr, "sockshim dump: unknown argument '%s'\n%s", argv[i], kDumpUsage);
      return kExitUsage;
    }
  }
  nlohmann::json args = nlohmann::json::object();
  if (!sections.empty()) args["sections"] = sections;

  std::vector<Peer> peers;
  try {
    peers = pid ? std::vector<Peer>{find_peer(pid)} : list_peers();
  } catch (const std::exception& e) {
    fprintf(stderr, "sockshim dump: %s\n", e.what());
    return 1;
  }
  nlohmann::json all = nlohmann::json::array();
  int status = 0;
  for (const Peer& peer : peers) {
    try {
      nlohmann::json dump = call(peer, "dump", args);
      if (as_json)
        all.push_back(dump);
      else
        print_text(dump);
    } catch (const std::exception& e) {
      fprintf(stderr, "sockshim dump: pid %d: %s\n", peer.pid, e.what());
      status = 1;
    }
  }
  if (as_json) printf("%s\n", nlohmann::json{{"processes", all}}.dump(2).c_str());
  return status;
}

}  // namespace sockshim::tools
