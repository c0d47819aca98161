// The sockshim subcommands. Each takes the arguments after its name and returns
// the process exit status.
#pragma once

namespace sockshim::tools {

int run_main(int argc, char** argv);
int ps_main(int argc, char** argv);
int dump_main(int argc, char** argv);
int map_main(int argc, char** argv);
int top_main(int argc, char** argv);
int reload_main(int argc, char** argv);
int check_main(int argc, char** argv);
int test_run_main(int argc, char** argv);

// Exit statuses shared by the commands (those of env(1) for `run`).
inline constexpr int kExitUsage = 2;
inline constexpr int kExitRunFailed = 125;
inline constexpr int kExitCannotExecute = 126;
inline constexpr int kExitNotFound = 127;

}  // namespace sockshim::tools
