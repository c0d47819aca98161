// Receive-path benchmark: in-process forwarding of a stream of 64 KiB writes.
// A writer thread writes into c1; whatever arrives on its peer p1 must leave
// through c2, and a reader thread reads it from c2's peer p2. Forwarders:
//   read/write proxy   a thread: read(p1, 64 KiB) then write(c2) until done
//   splice proxy       a thread: splice(p1 -> pipe -> c2)
//   shim               under libsockshim.so: p1 in sockmap src with a stream
//                      verdict redirecting (egress) to c2 in sockmap dst; no
//                      thread of the program moves a byte
//   kernel sockmap     the same with a clang-built BPF program (root, bpf())
// The shim and the kernel run with a whole-buffer stream parser + stream
// verdict, and with the verdict alone. Each repetition of each forwarder runs
// in its own process, interleaved; medians of throughput (GB/s) and of CPU
// seconds per GB (getrusage of the process: writer, reader and forwarder
// together; the kernel's backlog work runs in kworkers and is not counted) are
// printed with ratios against the faster userspace proxy.
//
// usage: recv_bench LIBSOCKSHIM.so POLICY_DIR [BPF_OBJECT|-] [RUNS] [MIB]
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "test/support/redirect.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kWrite = 65536;
constexpr int kStallSeconds = 10;  // a forwarder that moves nothing for this long fails the run

struct Mode {
  const char* name;    // argument of --measure
  const char* label;   // printed
  const char* policy;  // shim modes: the policy file in POLICY_DIR
};

const Mode kModes[] = {
    {"rw", "read/write proxy", nullptr},
    {"splice", "splice proxy", nullptr},
    {"shim", "shim stream redirect (parser+verdict)", "bench_strp.json"},
    {"shim-verdict", "shim stream redirect (verdict only)", "bench_verdict.json"},
    {"kernel", "kernel sockmap (parser+verdict)", nullptr},
    {"kernel-verdict", "kernel sockmap (verdict only)", nullptr},
};

bool write_all(int fd, const char* b, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, b, n);
    if (w <= 0) return false;
    b += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void rw_proxy(int from, int to) {
  std::vector<char> buf(kWrite);
  ssize_t n;
  while ((n = read(from, buf.data(), buf.size())) > 0)
    if (!write_all(to, buf.data(), static_cast<size_t>(n))) return;
}

void splice_proxy(int from, int to) {
  int pipefd[2];
  if (pipe(pipefd)) return;
  for (;;) {
    ssize_t n = splice(from, nullptr, pipefd[1], nullptr, kWrite, SPLICE_F_MOVE | SPLICE_F_MORE);
    if (n <= 0) break;
    while (n > 0) {
      ssize_t m = splice(pipefd[0], nullptr, to, nullptr, static_cast<size_t>(n),
                         SPLICE_F_MOVE | SPLICE_F_MORE);
      if (m <= 0) goto out;
      n -= m;
    }
  }
out:
  close(pipefd[0]);
  close(pipefd[1]);
}

// The shim's C API, found in the preloaded library.
bool shim_insert(int p1, int c2) {
  using update_fn = int (*)(const char*, const void*, const void*, uint64_t);
  auto update = reinterpret_cast<update_fn>(dlsym(RTLD_DEFAULT, "sockshim_map_update_elem"));
  if (!update) {
    fprintf(stderr, "sockshim_map_update_elem not found: not under the shim?\n");
    return false;
  }
  uint32_t key = 0;
  uint64_t dst = static_cast<uint64_t>(c2), src = static_cast<uint64_t>(p1);
  int r = update("dst", &key, &dst, 0);
  if (r == 0) r = update("src", &key, &src, 0);
  if (r != 0) fprintf(stderr, "sockshim_map_update_elem: %s\n", strerror(-r));
  return r == 0;
}

bool kernel_insert(const char* object, bool parser, int p1, int c2) {
  libbpf_set_print(nullptr);
  bpf_object* obj = bpf_object__open_file(object, nullptr);
  if (!obj || bpf_object__load(obj)) {
    fprintf(stderr, "cannot load %s: %s\n", object, strerror(errno));
    return false;
  }
  int src = bpf_object__find_map_fd_by_name(obj, "src");
  int dst = bpf_object__find_map_fd_by_name(obj, "dst");
  int prog_parser = bpf_program__fd(bpf_object__find_program_by_name(obj, "parser"));
  int prog_verdict = bpf_program__fd(bpf_object__find_program_by_name(obj, "verdict"));
  int key = 0;
  if ((parser && bpf_prog_attach(prog_parser, src, BPF_SK_SKB_STREAM_PARSER, 0)) ||
      bpf_prog_attach(prog_verdict, src, BPF_SK_SKB_STREAM_VERDICT, 0) ||
      bpf_map_update_elem(dst, &key, &c2, BPF_ANY) ||
      bpf_map_update_elem(src, &key, &p1, BPF_ANY)) {
    fprintf(stderr, "bpf attach/update: %s\n", strerror(errno));
    return false;
  }
  return true;  // the object stays loaded until the process exits
}

double cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  auto s = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return s(ru.ru_utime) + s(ru.ru_stime);
}

// One run in this process; prints "GB/s CPU-s/GB".
int measure(const std::string& mode, size_t total, const char* object) {
  test_support::RedirectPairs pairs;
  if (!pairs.connect()) {
    perror("loopback pairs");
    exit(1);
  }
  const int c1 = pairs.a.c, p1 = pairs.a.p, c2 = pairs.b.c, p2 = pairs.b.p;
  std::thread forwarder;
  if (mode == "rw") {
    forwarder = std::thread(rw_proxy, p1, c2);
  } else if (mode == "splice") {
    forwarder = std::thread(splice_proxy, p1, c2);
  } else if (mode.starts_with("shim")) {
    if (!shim_insert(p1, c2)) return 1;
  } else if (!kernel_insert(object, mode == "kernel", p1, c2)) {
    return 3;  // the kernel refused: reported as skipped
  }
  // Static: the watchdog below outlives this frame.
  static std::atomic<size_t> got{0};
  std::thread reader([&] {
    std::vector<char> buf(kWrite);
    while (got < total) {
      ssize_t n = read(p2, buf.data(), buf.size());
      if (n <= 0) return;
      got += static_cast<size_t>(n);
    }
  });
  std::thread([mode, total] {
    for (size_t last = SIZE_MAX; got < total; sleep(kStallSeconds)) {
      if (got == last) {
        fprintf(stderr, "%s: stalled at %zu of %zu bytes\n", mode.c_str(), last, total);
        _exit(1);
      }
      last = got;
    }
  }).detach();
  std::vector<char> chunk(kWrite, 'z');
  double cpu0 = cpu_seconds();
  auto t0 = Clock::now();
  for (size_t sent = 0; sent < total; sent += kWrite)
    if (!write_all(c1, chunk.data(), kWrite)) break;
  reader.join();
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  double cpu = cpu_seconds() - cpu0;
  if (got < total) {
    fprintf(stderr, "%s: %zu of %zu bytes arrived\n", mode.c_str(), got.load(), total);
    return 1;
  }
  shutdown(c1, SHUT_WR);  // the proxies see EOF and stop
  if (forwarder.joinable()) forwarder.join();
  double gb = total / 1e9;
  printf("%f %f\n", gb / seconds, cpu / gb);
  return 0;
}

struct Sample {
  double gbps = 0, cpu = 0;
  int status = 0;  // 0 ok, 3 skipped (bpf refused), else failed
};

Sample child(const char* self, const char* lib, const std::string& dir, const char* object,
             const Mode& m, size_t mib) {
  int fds[2];
  if (pipe(fds) != 0) return {0, 0, 1};
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    if (m.policy) {
      std::string policy = dir + "/" + m.policy;
      setenv("LD_PRELOAD", lib, 1);
      setenv("SOCKSHIM_POLICY", policy.c_str(), 1);
      setenv("SOCKSHIM_LOG", "error", 1);
    }
    std::string size = std::to_string(mib);
    execl(self, self, "--measure", m.name, size.c_str(), object, nullptr);
    _exit(127);
  }
  close(fds[1]);
  char buf[256] = {};
  ssize_t n = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  Sample s;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3) {
    s.status = 3;
  } else if (n <= 0 || sscanf(buf, "%lf %lf", &s.gbps, &s.cpu) != 2) {
    s.status = 1;
    fprintf(stderr, "%s: run failed (%s %d)\n", m.label,
            WIFSIGNALED(status) ? "signal" : "exit status",
            WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  }
  return s;
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

struct Figures {
  std::vector<double> gbps, cpu;
  int failed = 0, skipped = 0;
  double rate() const { return median(gbps); }
  double cost() const { return median(cpu); }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc == 5 && std::string(argv[1]) == "--measure")
    return measure(argv[2], std::stoul(argv[3]) << 20, argv[4]);
  if (argc < 3) {
    fprintf(stderr, "usage: recv_bench LIBSOCKSHIM.so POLICY_DIR [BPF_OBJECT|-] [RUNS] [MIB]\n");
    return 2;
  }
  const char* object = argc > 3 ? argv[3] : "-";
  int runs = argc > 4 ? std::atoi(argv[4]) : 5;
  size_t mib = argc > 5 ? std::stoul(argv[5]) : 2048;
  bool kernel = std::string(object) != "-" && geteuid() == 0;
  constexpr size_t kCount = std::size(kModes);
  Figures fig[kCount];
  // Each shim row against the proxies of the same repetition: a load that
  // comes and goes on a shared machine moves both sides of these ratios.
  std::vector<double> paired_rate[2], paired_cpu[2];
  for (int rep = 0; rep < runs; ++rep) {
    Sample now[kCount];
    for (size_t i = 0; i < kCount; ++i) {
      const Mode& m = kModes[i];
      if (std::string(m.name).starts_with("kernel") && (!kernel || fig[i].skipped)) {
        ++fig[i].skipped;
        continue;
      }
      Sample s = now[i] = child(argv[0], argv[1], argv[2], object, m, mib);
      if (s.status == 3) {
        ++fig[i].skipped;
      } else if (s.status) {
        ++fig[i].failed;
      } else {
        fig[i].gbps.push_back(s.gbps);
        fig[i].cpu.push_back(s.cpu);
      }
    }
    for (int k = 0; k < 2; ++k) {
      const Sample &rw = now[0], &sp = now[1], &sh = now[2 + k];
      if (rw.status || sp.status || sh.status || !rw.gbps || !sp.gbps || !sh.gbps) continue;
      paired_rate[k].push_back(sh.gbps / std::max(rw.gbps, sp.gbps));
      paired_cpu[k].push_back(sh.cpu / rw.cpu);
    }
  }

  double best_proxy = std::max(fig[0].rate(), fig[1].rate());
  printf(
      "receive path: in-process forwarding, 64 KiB writes, %zu MiB per run, %d runs each, "
      "medians (min..max)\n",
      mib, runs);
  printf("%-38s %20s %10s %16s\n", "forwarder", "GB/s", "CPU s/GB", "vs faster proxy");
  for (size_t i = 0; i < kCount; ++i) {
    const Figures& f = fig[i];
    if (f.gbps.empty()) {
      printf("%-38s %s\n", kModes[i].label,
             f.skipped ? (kernel ? "skipped: the kernel refused bpf()"
                                 : "skipped: needs root and the BPF object")
                       : "failed: no run completed");
      continue;
    }
    auto [lo, hi] = std::minmax_element(f.gbps.begin(), f.gbps.end());
    char range[64];
    snprintf(range, sizeof range, "%.2f (%.2f..%.2f)", f.rate(), *lo, *hi);
    printf("%-38s %20s %10.3f %15.2fx%s\n", kModes[i].label, range, f.cost(), f.rate() / best_proxy,
           f.failed ? "  (some runs failed)" : "");
  }
  if (kernel)
    printf("(kernel rows: CPU s/GB leaves out the kworkers that run the redirect backlog)\n");
  for (int k = 0; k < 2; ++k)
    if (!paired_rate[k].empty())
      printf(
          "%s, paired with the proxies of its repetition (median of %zu): %.2fx the faster "
          "proxy's GB/s, %.2fx the read/write proxy's CPU s/GB\n",
          kModes[2 + k].label, paired_rate[k].size(), median(paired_rate[k]),
          median(paired_cpu[k]));
  const Figures& shim = fig[2];
  if (!shim.gbps.empty())
    printf(
        "targets: shim >= 0.95x the faster userspace proxy: %.2fx %s; CPU/GB <= the read/write "
        "proxy's: %.3f vs %.3f %s\n",
        shim.rate() / best_proxy, shim.rate() >= 0.95 * best_proxy ? "met" : "MISSED", shim.cost(),
        fig[0].cost(), shim.cost() <= fig[0].cost() ? "met" : "MISSED");
  return shim.gbps.empty() || fig[3].gbps.empty() ? 1 : 0;
}
