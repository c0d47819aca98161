// sockshim reload PID [POLICY]: swap a live process's policy.
#include <limits.h>
#include <stdlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>

#include "policy/policy.h"
#include "tools/commands.h"
#include "tools/control_client.h"

namespace sockshim::tools {
namespace {

constexpr const char kReloadUsage[] =
    "usage: sockshim reload PID [POLICY]\n"
    "\n"
    "Validates POLICY (default: the file the process was started with, read again)\n"
    "in the process PID and only then swaps it in. Maps whose definition is\n"
    "unchanged (same name, type, sizes and layouts) keep their sockets; the others\n"
    "are emptied and replaced. Each psock runs the new programs of the maps it is\n"
    "in from its next message on; a message being processed finishes under the\n"
    "old program. A policy with errors is refused with every error, and the old\n"
    "one stays. Prints the maps and which of them kept their sockets.\n"
    "\n"
    "When PID is in a domain, the policy becomes the domain's: every other member\n"
    "is asked to run it at once and a line per member says whether it does\n"
    "('domain member PID: reloaded' or 'domain member PID: not yet: WHY'); a\n"
    "member that cannot be asked runs it from its next send or connection event.\n"
    "\n"
    "exit status: 0 when swapped (in every member of the domain), 1 when refused,\n"
    "PID cannot be reached or a member does not run it yet, 2 for a usage error.\n";

}  // namespace

int reload_main(int argc, char** argv) {
  if (argc >= 2 && (std::string(argv[1]) == "-h" || std::string(argv[1]) == "--help")) {
    fputs(kReloadUsage, stdout);
    return 0;
  }
  if (argc < 2 || argc > 3 ||
      std::string(argv[1]).find_first_not_of("0123456789") != std::string::npos) {
    fprintf(stderr, "sockshim reload: expected PID [POLICY]\n%s", kReloadUsage);
    return kExitUsage;
  }
  nlohmann::json args = nlohmann::json::object();
  if (argc == 3) {
    // The process resolves paths from its own directory: send an absolute one.
    // Read here first, so that an unreadable file gets the message every
    // other entry point prints rather than a refusal from the process.
    char resolved[PATH_MAX];
    std::string text, why;
    if (!realpath(argv[2], resolved))
      why = strerror(errno);
    else
      why = policy::read_policy_file(resolved, &text);
    if (!why.empty()) {
      fprintf(stderr, "sockshim reload: %s\n", policy::read_error(argv[2], why).c_str());
      return 1;
    }
    args["policy"] = resolved;
  }
  try {
    nlohmann::json r = call(find_peer(atoi(argv[1])), "reload", args);
    std::string maps, kept;
    for (const auto& m : r["maps"]) maps += (maps.empty() ? "" : ", ") + m.get<std::string>();
    for (const auto& m : r["kept"]) kept += (kept.empty() ? "" : ", ") + m.get<std::string>();
    printf("reloaded %s: maps %s; kept their sockets: %s\n", r["policy"].get<std::string>().c_str(),
           maps.empty() ? "none" : maps.c_str(), kept.empty() ? "none" : kept.c_str());
    int status = 0;
    if (r.contains("domain"))
      for (const auto& m : r["domain"]["members"]) {
        bool done = m.value("reloaded", false);
        printf("domain member %d: %s%s\n", m.value("pid", 0),
               done ? "reloaded" : "not yet: ", done ? "" : m.value("error", "").c_str());
        if (!done) status = 1;
      }
    return status;
  } catch (const std::exception& e) {
    fprintf(stderr, "sockshim reload: %s\n", e.what());
    return 1;
  }
}

}  // namespace sockshim::tools
