// Connection set-up benchmark: connections per second a server completes
// (accept, one byte in, one byte out, close), in two server shapes:
//   accept loop          the server itself accepts, reads, writes and closes;
//   fork per connection  the server accepts and forks; the child reads, writes
//                        and exits (socat's TCP-LISTEN,fork, inetd).
// Each shape runs without the shim, with the shim and no policy (pass-through),
// and with the shim and a sockops + sk_msg policy (conn_policy.json: every
// passive_established socket enters a sockhash whose sk_msg program passes).
// The client is this process, without the shim, one connection at a time, so
// the figure is the whole set-up latency a client sees. Every repetition
// starts a fresh server, repetitions are interleaved (the machine is shared)
// and the medians are compared with the no-shim median of the same run.
//
// usage: conn_bench LIBSOCKSHIM.so POLICY_DIR [REPETITIONS]
//        conn_bench --serve accept|fork     (the server, started by the above)
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

enum Shape { kAccept, kFork, kShapes };
enum Mode { kNoShim, kPassThrough, kPolicy, kModes };

const char* const kShapeArg[kShapes] = {"accept", "fork"};
const char* const kShapeName[kShapes] = {"accept loop", "fork per connection"};
const char* const kModeName[kModes] = {"no shim", "pass-through", "sockops+sk_msg"};
// Timed connections per measurement, after a warm-up of kWarmUp.
const int kConnections[kShapes] = {3000, 800};
constexpr int kWarmUp = 50;

void echo_one(int c) {
  char b;
  if (read(c, &b, 1) == 1) (void)!write(c, &b, 1);
  close(c);
}

// The server: listens on an ephemeral loopback port, writes it to stdout and
// serves until killed.
int serve(Shape shape) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(l, 128) != 0 ||
      getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    perror("conn_bench server");
    return 1;
  }
  printf("%d\n", ntohs(a.sin_port));
  fflush(stdout);
  signal(SIGCHLD, SIG_IGN);  // children are reaped by the kernel
  for (;;) {
    int c = accept(l, nullptr, nullptr);
    if (c < 0) continue;
    if (shape == kAccept) {
      echo_one(c);
      continue;
    }
    pid_t pid = fork();
    if (pid == 0) {
      close(l);
      echo_one(c);
      exit(0);  // exit, not _exit: the child's exit handlers are part of its cost
    }
    close(c);
  }
}

bool one_connection(const sockaddr_in& a) {
  int c = socket(AF_INET, SOCK_STREAM, 0);
  char b = 'x';
  bool ok = connect(c, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0 &&
            write(c, &b, 1) == 1 && read(c, &b, 1) == 1;
  close(c);
  return ok;
}

struct Server {
  pid_t pid = -1;
  sockaddr_in addr{};
};

Server start_server(const char* self, const char* lib, const std::string& policy,
                    const std::string& runtime_dir, Shape shape, Mode mode) {
  Server s;
  int fds[2];
  if (pipe(fds) != 0) return s;
  s.pid = fork();
  if (s.pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    unsetenv("LD_PRELOAD");
    unsetenv("SOCKSHIM_POLICY");
    unsetenv("SOCKSHIM_CONTROL");
    if (mode != kNoShim) {
      setenv("LD_PRELOAD", lib, 1);
      setenv("SOCKSHIM_RUNTIME_DIR", runtime_dir.c_str(), 1);
    }
    if (mode == kPolicy) setenv("SOCKSHIM_POLICY", policy.c_str(), 1);
    execl(self, self, "--serve", kShapeArg[shape], nullptr);
    _exit(127);
  }
  close(fds[1]);
  char buf[32] = {};
  ssize_t n = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  s.addr.sin_family = AF_INET;
  s.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s.addr.sin_port = htons(static_cast<uint16_t>(n > 0 ? atoi(buf) : 0));
  return s;
}

// Connections per second of one fresh server; 0 if anything failed.
double measure(const char* self, const char* lib, const std::string& policy,
               const std::string& runtime_dir, Shape shape, Mode mode) {
  Server s = start_server(self, lib, policy, runtime_dir, shape, mode);
  if (s.pid < 0) return 0;
  double rate = 0;
  if (s.addr.sin_port != 0) {
    bool ok = true;
    for (int i = 0; i < kWarmUp && ok; ++i) ok = one_connection(s.addr);
    auto t0 = Clock::now();
    for (int i = 0; i < kConnections[shape] && ok; ++i) ok = one_connection(s.addr);
    double secs = std::chrono::duration<double>(Clock::now() - t0).count();
    if (ok) rate = kConnections[shape] / secs;
  }
  kill(s.pid, SIGKILL);
  waitpid(s.pid, nullptr, 0);
  if (rate == 0)
    fprintf(stderr, "conn_bench: %s, %s: the server failed\n", kShapeName[shape], kModeName[mode]);
  return rate;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && strcmp(argv[1], "--serve") == 0)
    return serve(strcmp(argv[2], "fork") == 0 ? kFork : kAccept);
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: conn_bench LIBSOCKSHIM.so POLICY_DIR [REPETITIONS]\n");
    return 2;
  }
  int reps = argc == 4 ? atoi(argv[3]) : 7;
  if (reps < 1) reps = 1;
  std::string policy = std::string(argv[2]) + "/conn_policy.json";
  char dir[] = "/tmp/sockshim-conn-bench-XXXXXX";
  if (!mkdtemp(dir)) {
    perror("conn_bench: mkdtemp");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  // rates[shape][mode]: one figure per repetition, the modes interleaved and
  // their order rotated so that drift in the machine's load hits all alike.
  std::vector<double> rates[kShapes][kModes];
  for (int rep = 0; rep < reps; ++rep)
    for (int shape = 0; shape < kShapes; ++shape)
      for (int k = 0; k < kModes; ++k) {
        Mode mode = static_cast<Mode>((rep + k) % kModes);
        rates[shape][mode].push_back(
            measure(argv[0], argv[1], policy, dir, static_cast<Shape>(shape), mode));
      }
  rmdir(dir);  // control sockets are removed by the processes that made them
  bool ok = true;
  printf("connections per second, medians of %d interleaved repetitions (min..max);\n", reps);
  printf("slowdown = no-shim rate / rate (the target with the policy is <= 1.30)\n");
  for (int shape = 0; shape < kShapes; ++shape) {
    double base = median(rates[shape][kNoShim]);
    for (int mode = 0; mode < kModes; ++mode) {
      const std::vector<double>& v = rates[shape][mode];
      double m = median(v);
      ok = ok && m > 0;
      printf("%-20s %-15s %8.0f conn/s (%.0f..%.0f)", kShapeName[shape], kModeName[mode], m,
             *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()));
      if (mode != kNoShim && m > 0) printf("  slowdown %.2fx", base / m);
      printf("\n");
    }
  }
  return ok ? 0 : 1;
}
