// sockshim run [-p POLICY] -- CMD [ARGS...]: exec CMD with the shim preloaded.
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "policy/policy.h"
#include "tools/commands.h"
#include "tools/elf_probe.h"

namespace sockshim::tools {
namespace {

constexpr const char kRunUsage[] =
    "usage: sockshim run [-p POLICY] [--] CMD [ARGS...]\n"
    "\n"
    "Runs CMD with libsockshim.so preloaded (added in front of any LD_PRELOAD) and\n"
    "SOCKSHIM_POLICY set to POLICY. CMD replaces this process, so its exit status\n"
    "and signals are CMD's own.\n"
    "\n"
    "  -p, --policy POLICY   the policy file (default: none, every socket passes through)\n"
    "\n"
    "The library is looked for in $SOCKSHIM_LIBRARY, beside this program in a build\n"
    "tree (../shim/libsockshim.so), then in " SOCKSHIM_LIBDIR
    ".\n"
    "A statically linked CMD or a Go program makes system calls a preload cannot\n"
    "see; run warns about them and runs them anyway.\n"
    "\n"
    "exit status: CMD's, or 125 when run itself fails, 126 when CMD cannot be\n"
    "executed, 127 when CMD is not found, 2 for a usage error.\n";

bool is_file(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string self_dir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

std::string find_library() {
  if (const char* env = getenv("SOCKSHIM_LIBRARY"); env && *env) return is_file(env) ? env : "";
  for (const std::string& candidate :
       {self_dir() + "/../shim/libsockshim.so", std::string(SOCKSHIM_LIBDIR) + "/libsockshim.so"})
    if (is_file(candidate)) {
      char resolved[PATH_MAX];
      return realpath(candidate.c_str(), resolved) ? resolved : candidate;
    }
  return {};
}

void warn_if_unreachable(const std::string& command, const std::string& path) {
  switch (probe_executable(path)) {
    case ExecutableKind::static_binary:
      fprintf(stderr,
              "sockshim: warn: %s is statically linked; the shim cannot see its socket "
              "calls, so the policy does not apply to it\n",
              command.c_str());
      break;
    case ExecutableKind::go_binary:
      fprintf(stderr,
              "sockshim: warn: %s is a Go program; Go makes raw system calls the shim "
              "cannot see, so the policy does not apply to it\n",
              command.c_str());
      break;
    default:
      break;
  }
}

}  // namespace

int run_main(int argc, char** argv) {
  std::string policy;
  int i = 1;
  for (; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--") {
      ++i;
      break;
    }
    if (arg == "-h" || arg == "--help") {
      fputs(kRunUsage, stdout);
      return 0;
    }
    if (arg == "-p" || arg == "--policy") {
      if (++i == argc) {
        fprintf(stderr, "sockshim run: %s needs a policy file\n%s", arg.c_str(), kRunUsage);
        return kExitUsage;
      }
      policy = argv[i];
      continue;
    }
    if (arg.size() > 1 && arg[0] == '-') {
      fprintf(stderr, "sockshim run: unknown option '%s'\n%s", arg.c_str(), kRunUsage);
      return kExitUsage;
    }
    break;
  }
  if (i == argc) {
    fprintf(stderr, "sockshim run: no command given\n%s", kRunUsage);
    return kExitUsage;
  }

  std::string library = find_library();
  if (library.empty()) {
    fprintf(stderr,
            "sockshim run: cannot find libsockshim.so (looked in $SOCKSHIM_LIBRARY, %s/../shim, "
            "%s)\n",
            self_dir().c_str(), SOCKSHIM_LIBDIR);
    return kExitRunFailed;
  }
  if (!policy.empty()) {
    // Read here, as the library will: a policy CMD could not read is run's
    // failure (125), not CMD's (78).
    char resolved[PATH_MAX];
    std::string text, why;
    if (!realpath(policy.c_str(), resolved))
      why = strerror(errno);
    else
      why = policy::read_policy_file(resolved, &text);
    if (!why.empty()) {
      fprintf(stderr, "sockshim run: %s\n", policy::read_error(policy, why).c_str());
      return kExitRunFailed;
    }
    setenv("SOCKSHIM_POLICY", resolved, 1);
  }

  // A sanitized library's runtimes come first, by the names it links (the
  // loader finds them): ASan refuses to start unless it is loaded first.
  std::string preload;
  for (const std::string& runtime : sanitizer_runtimes(library)) preload += runtime + ":";
  preload += library;
  if (const char* old = getenv("LD_PRELOAD"); old && *old) preload += std::string(":") + old;
  setenv("LD_PRELOAD", preload.c_str(), 1);

  const char* command = argv[i];
  std::string path = find_in_path(command);
  if (path.empty()) {
    fprintf(stderr, "sockshim run: %s: command not found\n", command);
    return kExitNotFound;
  }
  warn_if_unreachable(command, path);
  execv(path.c_str(), argv + i);
  int err = errno;
  fprintf(stderr, "sockshim run: cannot execute %s: %s\n", command, strerror(err));
  return err == ENOENT ? kExitNotFound : kExitCannotExecute;
}

}  // namespace sockshim::tools
