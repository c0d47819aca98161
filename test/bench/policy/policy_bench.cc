// Verdict evaluation and stream parser cost: ns per message, the median of
// several timed batches. Run on an idle machine: taskset -c 1 policy_bench
#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "policy/policy.h"
#include "tools/fake_kernel.h"

using namespace sockshim::policy;

namespace {

// Ten rules on the header only; none holds for the benchmark's socket, so
// every rule is evaluated and the default decides: the worst case.
constexpr const char kHeaderOnly[] =
    R"({"version": 1, "programs": {"p": {"type": "sk_msg", "rules": [
  {"if": {"local_port": 1}, "do": ["drop"]},
  {"if": {"local_port": [2, 3, 4]}, "do": ["drop"]},
  {"if": {"remote_port": {"range": [10, 20]}}, "do": ["drop"]},
  {"if": {"remote_port": 5, "local_port": 6}, "do": ["drop"]},
  {"if": {"local_ip4": "10.0.0.1"}, "do": ["drop"]},
  {"if": {"remote_ip4": {"in": ["10.0.0.2", "10.0.0.3"]}}, "do": ["drop"]},
  {"if": {"family": "AF_INET6"}, "do": ["drop"]},
  {"if": {"size": {"gt": 100000}}, "do": ["drop"]},
  {"if": {"not": {"family": "AF_INET"}}, "do": ["drop"]},
  {"if": {"any": [{"local_port": 7}, {"remote_port": 8}]}, "do": ["drop"]}],
  "default": "pass"}}})";

// Ten rules mixing ports, prefix, contains and a storage condition; again none holds.
constexpr const char kMixed[] = R"({"version": 1,
  "maps": {"st": {"type": "sk_storage", "flags": ["BPF_F_NO_PREALLOC"], "value": {"bytes": "u64"}}},
  "programs": {"p": {"type": "sk_msg", "rules": [
  {"if": {"local_port": 1}, "do": ["drop"]},
  {"if": {"remote_port": [2, 3, 4]}, "do": ["drop"]},
  {"if": {"data": {"prefix": "FLUSHALL"}}, "do": ["drop"]},
  {"if": {"data": {"prefix": "DEBUG "}}, "do": ["drop"]},
  {"if": {"data": {"contains": "FLUSHALL"}}, "do": ["drop"]},
  {"if": {"data": {"contains": "\r\nX-Evil: "}}, "do": ["drop"]},
  {"if": {"storage": {"map": "st", "field": "bytes", "gt": 1000000}}, "do": ["drop"]},
  {"if": {"data": {"at": 0, "be32": 305419896}}, "do": ["drop"]},
  {"if": {"local_port": 9, "data": {"contains": "x"}}, "do": ["drop"]},
  {"if": {"storage": {"map": "st", "field": "bytes", "eq": 7}}, "do": ["drop"]}],
  "default": "pass"}}})";

std::unique_ptr<Policy> load(const char* text) {
  LoadResult r = load_policy_text(text);
  if (!r.ok()) {
    for (const LoadError& e : r.errors) fprintf(stderr, "%s\n", e.format("bench").c_str());
    exit(1);
  }
  return std::move(r.policy);
}

volatile int64_t g_sink;

// Median over batches of ns per call.
template <typename F>
double measure(F&& f) {
  constexpr int kBatches = 7;
  size_t n = 1000;
  // Size a batch to ~20 ms.
  for (;;) {
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < n; ++i) g_sink = f();
    const auto dt = std::chrono::steady_clock::now() - t0;
    if (dt > std::chrono::milliseconds(20) || n > (size_t{1} << 30)) break;
    n *= 2;
  }
  std::vector<double> ns;
  for (int b = 0; b < kBatches; ++b) {
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < n; ++i) g_sink = f();
    const auto t1 = std::chrono::steady_clock::now();
    ns.push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() /
                 static_cast<double>(n));
  }
  std::sort(ns.begin(), ns.end());
  return ns[kBatches / 2];
}

std::vector<uint8_t> payload(size_t n) {
  std::vector<uint8_t> b(n);
  for (size_t i = 0; i < n; ++i) b[i] = static_cast<uint8_t>('a' + i % 26);
  return b;
}

}  // namespace

int main() {
  SocketTuple sk;
  sk.family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &sk.local_ip4);
  sk.remote_ip4 = sk.local_ip4;
  sk.local_port = 40000;
  sk.remote_port = 6379;

  auto header = load(kHeaderOnly);
  auto mixed = load(kMixed);
  FakeKernel kh(*header), km(*mixed);
  const uint64_t stored = 42;
  memcpy(km.storage_get(0, true), &stored, 8);

  printf("%-52s %12s\n", "case", "ns/run");
  for (size_t size : {size_t{64}, size_t{65536}}) {
    SkMsg msg(payload(size));
    const Program& ph = *header->program("p");
    const Program& pm = *mixed->program("p");
    const double h = measure([&] { return ph.run_msg(msg, sk, kh).ret; });
    printf("%-52s %12.1f\n",
           ("sk_msg, 10 header-only rules, " + std::to_string(size) + " B").c_str(), h);
    const double m = measure([&] { return pm.run_msg(msg, sk, km).ret; });
    printf(
        "%-52s %12.1f\n",
        ("sk_msg, 10 rules: ports/prefix/contains/storage, " + std::to_string(size) + " B").c_str(),
        m);
  }

  struct ParserCase {
    const char* name;
    FrameSpec spec;
  };
  FrameSpec whole;
  FrameSpec lp;
  lp.kind = FrameSpec::Kind::length_prefix;
  lp.adjust = 4;
  lp.max = 1 << 20;
  FrameSpec delim;
  delim.kind = FrameSpec::Kind::delimiter;
  delim.delimiter = {'\r', '\n'};
  FrameSpec fixed;
  fixed.kind = FrameSpec::Kind::fixed;
  fixed.fixed = 64;
  for (size_t size : {size_t{64}, size_t{65536}}) {
    std::vector<uint8_t> buf = payload(size);
    const uint32_t len = htonl(static_cast<uint32_t>(size - 4));
    std::vector<uint8_t> framed = buf;
    memcpy(framed.data(), &len, 4);
    std::vector<uint8_t> lined = buf;
    lined[size - 2] = '\r';
    lined[size - 1] = '\n';
    const ParserCase cases[] = {{"whole", whole},
                                {"length_prefix", lp},
                                {"delimiter \\r\\n at the end", delim},
                                {"fixed 64", fixed}};
    for (const ParserCase& c : cases) {
      const std::vector<uint8_t>& in = c.spec.kind == FrameSpec::Kind::length_prefix ? framed
                                       : c.spec.kind == FrameSpec::Kind::delimiter   ? lined
                                                                                     : buf;
      const double ns = measure([&] { return parse_frame(c.spec, in); });
      printf("%-52s %12.1f\n",
             ("parser " + std::string(c.name) + ", " + std::to_string(size) + " B").c_str(), ns);
    }
  }
  return 0;
}
