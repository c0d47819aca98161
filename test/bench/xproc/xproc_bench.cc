// Cross-process transfer through the bare ingress ring (core/domain/
// ingress_ring.h) against TCP over 127.0.0.1 without any shim: what the ring
// leaves as headroom for the psock wiring that will sit on it (issue 13's
// targets for the finished feature: throughput >= 1.5x loopback at no more CPU
// per GB, ping-pong round trips >= 1.2x).
//
//   64 KiB writes   a child writes total bytes in 64 KiB writes (the ring
//                   takes what fits and the writer sleeps on its futex for
//                   room, as a blocking send does), this process reads them
//                   with 64 KiB reads, sleeping on the futex when it is empty;
//                   GB/s by the wall clock and CPU seconds per GB of both.
//   ping-pong       1 byte there and back, blocking on both sides (the ring:
//                   one ring each way, futex waits; TCP: TCP_NODELAY).
//
// The ring lives in shared anonymous memory (as the arena, on tmpfs). Runs
// are interleaved (the machine is shared) and medians compared.
//
// usage: xproc_bench [RUNS [MIB [ROUND_TRIPS [RING_CAPACITY]]]]
//        defaults:    7     512   20000        1048576
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "core/domain/ingress_ring.h"
#include "test/support/loopback.h"

using sockshim::domain::IngressRing;
using sockshim::domain::RingRead;

namespace {

constexpr size_t kWrite = 64 * 1024;

double now(clockid_t clock) {
  timespec t;
  clock_gettime(clock, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

[[noreturn]] void fail(const char* what) {
  perror(what);
  exit(1);
}

// A ring in shared anonymous memory.
struct SharedRing {
  uint64_t len;
  void* mem;
  IngressRing ring;
  explicit SharedRing(uint32_t capacity) : len(IngressRing::bytes_for(capacity)) {
    mem = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) fail("mmap");
    if (IngressRing::format(mem, len, capacity) != 0 || ring.attach(mem, len) != 0)
      fail("ring format");
  }
  ~SharedRing() { munmap(mem, len); }
};

// Ring I/O with blocking semantics: all of n bytes written; at least one read.
void ring_write_all(IngressRing& r, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t k = r.append({p, n});
    if (k == -EAGAIN) {
      if (r.wait_writable(1, 0, nullptr) < 0) fail("ring wait_writable");
      continue;
    }
    if (k <= 0) fail("ring append");
    p += k;
    n -= static_cast<size_t>(k);
  }
}
size_t ring_read(IngressRing& r, uint8_t* p, size_t n) {
  for (;;) {
    iovec v{p, n};
    RingRead rr;
    int k = r.recv(&v, 1, 0, &rr);
    if (k == 0) return rr.copied;
    if (k != -EAGAIN || r.wait_readable(nullptr) < 0) fail("ring recv");
  }
}

void fd_write_all(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k <= 0) fail("write");
    p += k;
    n -= static_cast<size_t>(k);
  }
}
size_t fd_read(int fd, uint8_t* p, size_t n) {
  ssize_t k = read(fd, p, n);
  if (k <= 0) fail("read");
  return static_cast<size_t>(k);
}

// Runs child() in a fork child and parent() here, both timed from a common
// start: wall seconds of parent() and CPU seconds of both.
struct Figure {
  double wall, cpu;
};
Figure run_pair(const std::function<void()>& parent, const std::function<void()>& child) {
  auto* child_cpu = static_cast<double*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  int go[2];
  if (pipe(go) != 0) fail("pipe");
  pid_t pid = fork();
  if (pid < 0) fail("fork");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char c;
    if (read(go[0], &c, 1) != 1) _exit(1);
    double c0 = now(CLOCK_PROCESS_CPUTIME_ID);
    child();
    *child_cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    _exit(0);
  }
  double c0 = now(CLOCK_PROCESS_CPUTIME_ID), t0 = now(CLOCK_MONOTONIC);
  if (write(go[1], "g", 1) != 1) fail("write");
  parent();
  double wall = now(CLOCK_MONOTONIC) - t0, cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
  int status;
  if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fail("child");
  Figure f{wall, cpu + *child_cpu};
  close(go[0]);
  close(go[1]);
  munmap(child_cpu, 4096);
  return f;
}

struct Config {
  int runs = 7;
  size_t bytes = size_t{512} << 20;
  int round_trips = 20000;
  uint32_t capacity = 1 << 20;
};

Figure ring_throughput(const Config& c) {
  SharedRing s(c.capacity);
  std::vector<uint8_t> buf(kWrite, 'x');
  return run_pair(
      [&] {
        for (size_t got = 0; got < c.bytes;) got += ring_read(s.ring, buf.data(), kWrite);
      },
      [&] {
        for (size_t sent = 0; sent < c.bytes; sent += kWrite)
          ring_write_all(s.ring, buf.data(), std::min(kWrite, c.bytes - sent));
      });
}

Figure tcp_throughput(const Config& c) {
  test_support::LoopbackPair p;
  if (!p.connect()) fail("loopback connect");
  std::vector<uint8_t> buf(kWrite, 'x');
  return run_pair(
      [&] {
        for (size_t got = 0; got < c.bytes;) got += fd_read(p.p, buf.data(), kWrite);
      },
      [&] {
        for (size_t sent = 0; sent < c.bytes; sent += kWrite)
          fd_write_all(p.c, buf.data(), std::min(kWrite, c.bytes - sent));
      });
}

Figure ring_ping_pong(const Config& c) {
  SharedRing there(4096), back(4096);
  uint8_t b = 1;
  return run_pair(
      [&] {
        for (int i = 0; i < c.round_trips; ++i) {
          ring_write_all(there.ring, &b, 1);
          ring_read(back.ring, &b, 1);
        }
      },
      [&] {
        for (int i = 0; i < c.round_trips; ++i) {
          ring_read(there.ring, &b, 1);
          ring_write_all(back.ring, &b, 1);
        }
      });
}

Figure tcp_ping_pong(const Config& c) {
  test_support::LoopbackPair p;
  if (!p.connect()) fail("loopback connect");
  int one = 1;
  setsockopt(p.c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(p.p, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  uint8_t b = 1;
  return run_pair(
      [&] {
        for (int i = 0; i < c.round_trips; ++i) {
          fd_write_all(p.c, &b, 1);
          fd_read(p.c, &b, 1);
        }
      },
      [&] {
        for (int i = 0; i < c.round_trips; ++i) {
          fd_read(p.p, &b, 1);
          fd_write_all(p.p, &b, 1);
        }
      });
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  Config c;
  if (argc > 1) c.runs = atoi(argv[1]);
  if (argc > 2) c.bytes = size_t(atol(argv[2])) << 20;
  if (argc > 3) c.round_trips = atoi(argv[3]);
  if (argc > 4) c.capacity = static_cast<uint32_t>(atol(argv[4]));
  if (c.runs < 1 || c.bytes == 0 || c.round_trips < 1 || c.capacity < 4096) {
    fprintf(stderr, "usage: xproc_bench [RUNS [MIB [ROUND_TRIPS [RING_CAPACITY]]]]\n");
    return 2;
  }
  enum { kRingTput, kTcpTput, kRingPing, kTcpPing, kKinds };
  std::vector<double> gbps[kKinds], cpu_per_gb[kKinds], rtt_us[kKinds];
  const double gb = c.bytes / 1e9;
  for (int r = 0; r < c.runs; ++r) {
    for (int k : {kRingTput, kTcpTput}) {
      Figure f = k == kRingTput ? ring_throughput(c) : tcp_throughput(c);
      gbps[k].push_back(gb / f.wall);
      cpu_per_gb[k].push_back(f.cpu / gb);
    }
    for (int k : {kRingPing, kTcpPing}) {
      Figure f = k == kRingPing ? ring_ping_pong(c) : tcp_ping_pong(c);
      rtt_us[k].push_back(f.wall / c.round_trips * 1e6);
      cpu_per_gb[k].push_back(f.cpu / c.round_trips * 1e6);  // CPU µs per round trip
    }
  }
  printf("cross-process, two processes, %d interleaved runs, medians; ring capacity %u bytes\n",
         c.runs, c.capacity);
  printf("%-34s %14s %14s %10s\n", "", "ring (futex)", "TCP loopback", "ring/TCP");
  double rt = median(gbps[kRingTput]), tt = median(gbps[kTcpTput]);
  printf("%-34s %14.2f %14.2f %9.2fx\n", "64 KiB writes, GB/s", rt, tt, rt / tt);
  double rc = median(cpu_per_gb[kRingTput]), tc = median(cpu_per_gb[kTcpTput]);
  printf("%-34s %14.3f %14.3f %9.2fx\n", "  CPU s per GB (both processes)", rc, tc, rc / tc);
  double rp = median(rtt_us[kRingPing]), tp = median(rtt_us[kTcpPing]);
  printf("%-34s %14.2f %14.2f %9.2fx\n", "1-byte ping-pong, µs per round trip", rp, tp, rp / tp);
  printf("%-34s %14.0f %14.0f %9.2fx\n", "  round trips per second", 1e6 / rp, 1e6 / tp, tp / rp);
  double rpc = median(cpu_per_gb[kRingPing]), tpc = median(cpu_per_gb[kTcpPing]);
  printf("%-34s %14.2f %14.2f %9.2fx\n", "  CPU µs per round trip (both)", rpc, tpc, rpc / tpc);
  return 0;
}
