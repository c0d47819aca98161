// Send-path benchmark: sk_msg PASS overhead against no shim (1-byte ping-pong,
// 64 KiB streaming) and an ingress redirect between two in-process sockets
// against plain TCP loopback. One invocation runs itself without the shim,
// under LD_PRELOAD with a PASS policy, and under LD_PRELOAD with the peer
// acceleration policy, each repetition in its own process, interleaved, and
// prints medians of 5 repetitions and the ratios.
//
// usage: send_bench LIBSOCKSHIM.so POLICY_DIR
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "test/support/loopback.h"

namespace {

using Clock = std::chrono::steady_clock;

// A loopback pair without Nagle: every send goes out at once.
bool nodelay(const test_support::LoopbackPair& pair) {
  int one = 1;
  return setsockopt(pair.c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0 &&
         setsockopt(pair.p, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0;
}

// Round trips per second of a 1-byte ping-pong.
double ping_pong(int rounds) {
  test_support::LoopbackPair pair;
  if (!pair.connect() || !nodelay(pair)) return 0;
  const int c = pair.c, p = pair.p;
  std::thread echo([p, rounds] {
    char b;
    for (int i = 0; i < rounds; ++i) {
      if (recv(p, &b, 1, 0) != 1) return;
      send(p, &b, 1, 0);
    }
  });
  auto t0 = Clock::now();
  char b = 'x';
  for (int i = 0; i < rounds; ++i) {
    send(c, &b, 1, 0);
    if (recv(c, &b, 1, 0) != 1) break;
  }
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  echo.join();
  return rounds / s;
}

// MiB per second of 64 KiB sends read by another thread.
double stream(size_t total) {
  test_support::LoopbackPair pair;
  if (!pair.connect() || !nodelay(pair)) return 0;
  const int c = pair.c, p = pair.p;
  std::thread reader([p, total] {
    std::vector<char> buf(65536);
    size_t got = 0;
    while (got < total) {
      ssize_t n = recv(p, buf.data(), buf.size(), 0);
      if (n <= 0) return;
      got += static_cast<size_t>(n);
    }
  });
  std::vector<char> chunk(65536, 'z');
  auto t0 = Clock::now();
  for (size_t sent = 0; sent < total;) {
    ssize_t n = send(c, chunk.data(), chunk.size(), 0);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  reader.join();
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return total / s / (1 << 20);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

struct Figures {
  double ping = 0, stream = 0;
};

// One repetition of both measurements in a child process: without the shim
// (policy empty) or preloaded with the policy.
Figures child(const char* self, const char* lib, const std::string& policy) {
  int fds[2];
  if (pipe(fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    if (!policy.empty()) {
      setenv("LD_PRELOAD", lib, 1);
      setenv("SOCKSHIM_POLICY", policy.c_str(), 1);
      setenv("SOCKSHIM_LOG", "error", 1);
    }
    execl(self, self, "--measure", nullptr);
    _exit(127);
  }
  close(fds[1]);
  char buf[256] = {};
  ssize_t n = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  Figures f;
  if (n <= 0 || sscanf(buf, "%lf %lf", &f.ping, &f.stream) != 2)
    fprintf(stderr, "child (%s) failed (status %d)\n", policy.c_str(), status);
  return f;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::string(argv[1]) == "--measure") {
    double ping = ping_pong(20000);
    double str = stream(size_t{512} << 20);
    printf("%f %f\n", ping, str);
    return 0;
  }
  if (argc != 3) {
    fprintf(stderr, "usage: send_bench LIBSOCKSHIM.so POLICY_DIR\n");
    return 2;
  }
  std::string dir = argv[2];
  // Interleaved repetitions, so load from other processes hits all three alike.
  std::vector<double> pp[3], st[3];
  const std::string policies[3] = {"", dir + "/bench_pass.json", dir + "/bench_peer.json"};
  for (int rep = 0; rep < 5; ++rep)
    for (int m = 0; m < 3; ++m) {
      Figures f = child(argv[0], argv[1], policies[m]);
      pp[m].push_back(f.ping);
      st[m].push_back(f.stream);
    }
  Figures plain{median(pp[0]), median(st[0])}, pass{median(pp[1]), median(st[1])},
      redir{median(pp[2]), median(st[2])};
  printf(
      "1-byte ping-pong: no shim %.0f rt/s, sk_msg PASS %.0f rt/s, ratio %.3f (target >= 0.95)\n",
      plain.ping, pass.ping, pass.ping / plain.ping);
  printf(
      "64 KiB streaming: no shim %.0f MiB/s, sk_msg PASS %.0f MiB/s, ratio %.3f (target >= 0.95)\n",
      plain.stream, pass.stream, pass.stream / plain.stream);
  printf(
      "ingress redirect (in-process peer) %.0f MiB/s vs TCP loopback %.0f MiB/s: %.2fx (target >= "
      "1.5x)\n",
      redir.stream, plain.stream, redir.stream / plain.stream);
  return pass.ping > 0 && redir.stream > 0 ? 0 : 1;
}
