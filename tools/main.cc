// sockshim: the command line. A thin dispatcher; each command lives in its own file.
#include <cstdio>
#include <cstring>

#include "tools/commands.h"

namespace {

constexpr const char kUsage[] =
    "usage: sockshim COMMAND [ARGS...]\n"
    "\n"
    "Runs unmodified programs with the kernel's sockmap/sockhash/sk_storage model,\n"
    "emulated in user space by a preloaded library (libsockshim.so).\n"
    "\n"
    "commands:\n"
    "  run [-p POLICY] -- CMD [ARGS...]   run CMD with the shim preloaded\n"
    "  ps [--json]                        list the processes running under the shim\n"
    "  dump [PID] [SECTION...] [--json]   print their live state (maps, sockets, ...)\n"
    "  map lookup|update|delete PID MAP KEY [FD]   map operations on a live process\n"
    "  top [PID]                          a live view of psock traffic, every second\n"
    "  reload PID [POLICY]                swap a live process's policy, atomically\n"
    "  check POLICY [--json]              validate a policy, report every error\n"
    "  test-run POLICY PROGRAM [--input FILE|-] [--ctx JSON] [--repeat N] [--json]\n"
    "                                     run one program on given bytes and context\n"
    "\n"
    "options:\n"
    "  -h, --help      this text (`sockshim COMMAND --help` for a command's own)\n"
    "  -V, --version   the version\n"
    "\n"
    "environment (read by the preloaded library):\n"
    "  SOCKSHIM_POLICY       policy file; unset: pass-through, nothing attached\n"
    "  SOCKSHIM_LOG          off, error, warn (default), info, debug, trace\n"
    "  SOCKSHIM_LOG_FILE     log destination (default: standard error)\n"
    "  SOCKSHIM_RUNTIME_DIR  where control sockets and domains live\n"
    "  SOCKSHIM_DOMAIN       the domain to join (default: the policy file's)\n"
    "  SOCKSHIM_ON_ERROR     exit (default) or passthrough, for an unloadable policy\n";

struct Command {
  const char* name;
  int (*main)(int, char**);
};

constexpr Command kCommands[] = {
    {"run", sockshim::tools::run_main},
    {"ps", sockshim::tools::ps_main},
    {"dump", sockshim::tools::dump_main},
    {"map", sockshim::tools::map_main},
    {"top", sockshim::tools::top_main},
    {"reload", sockshim::tools::reload_main},
    {"check", sockshim::tools::check_main},
    {"test-run", sockshim::tools::test_run_main},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fputs(kUsage, stderr);
    return sockshim::tools::kExitUsage;
  }
  const char* name = argv[1];
  if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0) {
    fputs(kUsage, stdout);
    return 0;
  }
  if (strcmp(name, "-V") == 0 || strcmp(name, "--version") == 0) {
    printf("sockshim %s\n", SOCKSHIM_VERSION);
    return 0;
  }
  for (const Command& c : kCommands)
    if (strcmp(name, c.name) == 0) return c.main(argc - 1, argv + 1);
  fprintf(stderr, "sockshim: unknown command '%s' (see sockshim --help)\n", name);
  return sockshim::tools::kExitUsage;
}
