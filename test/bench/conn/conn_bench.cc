// Connection set-up benchmark: connections per second a server completes
// (accept, one byte in, one byte out, close), in two server shapes:
//   accept loop          the server itself accepts, reads, writes and closes;
//   fork per connection  the server accepts and forks; the child reads, writes
//                        and exits (socat's TCP-LISTEN,fork, inetd).
// Each shape runs without the shim, with the shim and no policy (pass-through),
// and with the shim and a sockops + sk_msg policy (conn_policy.json: every
// passive_established socket enters a sockhash whose sk_msg program passes).
// Three more runs of the policy split its cost: without the control socket
// (SOCKSHIM_CONTROL=off: no event-loop thread, so glibc's single-threaded
// fork) and without a domain (SOCKSHIM_DOMAIN set to a name the shim refuses,
// which leaves the process out of every domain; SOCKSHIM_LOG=off keeps the
// error that says so off the output), and without either.
// The client is this process, without the shim, one connection at a time, so
// the figure is the whole set-up latency a client sees. Every repetition
// starts a fresh server, repetitions are interleaved (the machine is shared)
// and the medians are compared with the no-shim median of the same run. Three
// figures: connections per second (wall clock, what a client sees), the CPU
// time the server and its children spent per connection (getrusage, less
// sensitive to other load on the machine) and their page faults per
// connection (getrusage; the same from run to run however loaded the machine
// is, and most of a fork child's cost is faults: each page it or its parent
// writes after the fork is copied, each page of code it runs is mapped
// afresh).
//
// usage: conn_bench LIBSOCKSHIM.so POLICY_DIR [REPETITIONS]
//        conn_bench --serve accept|fork     (the server, started by the above)
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

enum Shape { kAccept, kFork, kShapes };
enum Mode {
  kNoShim,
  kPassThrough,
  kPolicy,
  kPolicyNoControl,
  kPolicyNoDomain,
  kPolicyNoEither,
  kModes
};

const char* const kShapeArg[kShapes] = {"accept", "fork"};
const char* const kShapeName[kShapes] = {"accept loop", "fork per connection"};
const char* const kModeName[kModes] = {"no shim",           "pass-through",     "sockops+sk_msg",
                                       "  without control", "  without domain", "  without either"};
// Timed connections per measurement, after a warm-up of kWarmUp.
const int kConnections[kShapes] = {3000, 800};
constexpr int kWarmUp = 50;

void echo_one(int c) {
  char b;
  if (read(c, &b, 1) == 1) (void)!write(c, &b, 1);
  close(c);
}

volatile sig_atomic_t g_stop = 0;
rusage g_mark_self{}, g_mark_children{};

double cpu_seconds(const rusage& r) {
  return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) / 1e6;
}

long faults(const rusage& r) {
  return r.ru_minflt + r.ru_majflt;
}

void on_sigchld(int) {
  int saved = errno;
  while (waitpid(-1, nullptr, WNOHANG) > 0) {
  }
  errno = saved;
}

// SIGUSR1: the timed part starts; what was spent so far is not counted.
void on_sigusr1(int) {
  getrusage(RUSAGE_SELF, &g_mark_self);
  getrusage(RUSAGE_CHILDREN, &g_mark_children);
}

void on_sigterm(int) {
  g_stop = 1;
}

void handle(int sig, void (*fn)(int), int flags) {
  struct sigaction sa {};
  sa.sa_handler = fn;
  sa.sa_flags = flags;
  sigaction(sig, &sa, nullptr);
}

// The server: listens on an ephemeral loopback port, writes it to stdout and
// serves until SIGTERM; then writes the CPU seconds it and its (reaped)
// children spent since SIGUSR1, and their page faults.
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
  handle(SIGCHLD, on_sigchld, SA_RESTART | SA_NOCLDSTOP);  // as socat reaps its children
  handle(SIGUSR1, on_sigusr1, SA_RESTART);
  handle(SIGTERM, on_sigterm, 0);  // interrupts accept
  printf("%d\n", ntohs(a.sin_port));
  fflush(stdout);
  while (!g_stop) {
    int c = accept(l, nullptr, nullptr);
    if (c < 0) continue;
    if (g_stop) {  // the connection that wakes an accept the signal missed
      close(c);
      break;
    }
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
  rusage self{}, children{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  printf("%.6f %ld\n",
         cpu_seconds(self) - cpu_seconds(g_mark_self) + cpu_seconds(children) -
             cpu_seconds(g_mark_children),
         faults(self) - faults(g_mark_self) + faults(children) - faults(g_mark_children));
  return 0;
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
  int out = -1;  // the server's stdout
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
    unsetenv("SOCKSHIM_DOMAIN");
    unsetenv("SOCKSHIM_LOG");
    if (mode != kNoShim) {
      setenv("LD_PRELOAD", lib, 1);
      setenv("SOCKSHIM_RUNTIME_DIR", runtime_dir.c_str(), 1);
    }
    if (mode >= kPolicy) setenv("SOCKSHIM_POLICY", policy.c_str(), 1);
    if (mode == kPolicyNoControl || mode == kPolicyNoEither) setenv("SOCKSHIM_CONTROL", "off", 1);
    if (mode == kPolicyNoDomain || mode == kPolicyNoEither) {
      setenv("SOCKSHIM_DOMAIN", "\x01", 1);  // not printable: refused
      setenv("SOCKSHIM_LOG", "off", 1);
    }
    execl(self, self, "--serve", kShapeArg[shape], nullptr);
    _exit(127);
  }
  close(fds[1]);
  s.out = fds[0];
  char buf[32] = {};
  ssize_t n = 0;
  while (n < static_cast<ssize_t>(sizeof buf - 1)) {  // the port line
    ssize_t r = read(s.out, buf + n, 1);
    if (r <= 0 || buf[n] == '\n') break;
    n += r;
  }
  s.addr.sin_family = AF_INET;
  s.addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  s.addr.sin_port = htons(static_cast<uint16_t>(n > 0 ? atoi(buf) : 0));
  return s;
}

struct Figures {
  double rate = 0;             // connections per second
  double cpu_per_conn = 0;     // server CPU seconds per connection
  double faults_per_conn = 0;  // server page faults per connection
};

// One fresh server; zeros if anything failed.
Figures measure(const char* self, const char* lib, const std::string& policy,
                const std::string& runtime_dir, Shape shape, Mode mode) {
  Server s = start_server(self, lib, policy, runtime_dir, shape, mode);
  if (s.pid < 0) return {};
  Figures f;
  bool ok = s.addr.sin_port != 0;
  for (int i = 0; i < kWarmUp && ok; ++i) ok = one_connection(s.addr);
  kill(s.pid, SIGUSR1);
  auto t0 = Clock::now();
  for (int i = 0; i < kConnections[shape] && ok; ++i) ok = one_connection(s.addr);
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  kill(s.pid, SIGTERM);
  // A SIGTERM that lands between the loop's test and accept() leaves accept
  // blocked: one more connection wakes it.
  if (ok) {
    int c = socket(AF_INET, SOCK_STREAM, 0);
    connect(c, reinterpret_cast<const sockaddr*>(&s.addr), sizeof s.addr);
    close(c);
  }
  char buf[64] = {};
  ssize_t n = ok ? read(s.out, buf, sizeof buf - 1) : 0;
  int status = 0;
  waitpid(s.pid, &status, 0);
  close(s.out);
  if (ok && n > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    f.rate = kConnections[shape] / secs;
    char* end = nullptr;
    f.cpu_per_conn = strtod(buf, &end) / kConnections[shape];
    f.faults_per_conn = strtod(end, nullptr) / kConnections[shape];
  } else {
    if (!WIFEXITED(status)) kill(s.pid, SIGKILL);
    fprintf(stderr, "conn_bench: %s, %s: the server failed\n", kShapeName[shape], kModeName[mode]);
  }
  return f;
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
  // One figure per repetition, the modes interleaved and their order rotated
  // so that drift in the machine's load hits all alike.
  std::vector<double> rates[kShapes][kModes], cpus[kShapes][kModes], faults[kShapes][kModes];
  for (int rep = 0; rep < reps; ++rep)
    for (int shape = 0; shape < kShapes; ++shape)
      for (int k = 0; k < kModes; ++k) {
        Mode mode = static_cast<Mode>((rep + k) % kModes);
        Figures f = measure(argv[0], argv[1], policy, dir, static_cast<Shape>(shape), mode);
        rates[shape][mode].push_back(f.rate);
        cpus[shape][mode].push_back(f.cpu_per_conn);
        faults[shape][mode].push_back(f.faults_per_conn);
      }
  std::error_code ignored;  // control sockets went with their processes; domains stay
  std::filesystem::remove_all(dir, ignored);
  bool ok = true;
  printf("medians of %d interleaved repetitions (min..max); slowdown = no-shim figure / figure\n",
         reps);
  printf("(the target with the policy is <= 1.30x)\n");
  for (int shape = 0; shape < kShapes; ++shape) {
    double base_rate = median(rates[shape][kNoShim]);
    double base_cpu = median(cpus[shape][kNoShim]);
    double base_faults = median(faults[shape][kNoShim]);
    for (int mode = 0; mode < kModes; ++mode) {
      const std::vector<double>& v = rates[shape][mode];
      double m = median(v), cpu = median(cpus[shape][mode]), pf = median(faults[shape][mode]);
      ok = ok && m > 0;
      printf("%-20s %-18s %6.0f conn/s (%.0f..%.0f)", kShapeName[shape], kModeName[mode], m,
             *std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end()));
      if (mode != kNoShim && m > 0) printf(" slowdown %.2fx", base_rate / m);
      printf(", server CPU %.1f us/conn", cpu * 1e6);
      if (mode != kNoShim && base_cpu > 0) printf(" (%.2fx)", cpu / base_cpu);
      printf(", %.1f page faults/conn", pf);
      if (mode != kNoShim && base_faults > 0) printf(" (%.2fx)", pf / base_faults);
      printf("\n");
    }
  }
  return ok ? 0 : 1;
}
