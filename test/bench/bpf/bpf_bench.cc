// Interpreter cost: ns and instructions per run of hand-assembled sk_msg
// programs, the median of several timed batches. The first does what
// test/bench/policy's "10 header-only rules" policy does, so the two backends
// compare. Then both backends behind policy::Program::run_msg, as core runs
// them: a 19-instruction sk_msg program and the JSON rule doing the same,
// measured in interleaved rounds (median of the rounds' medians). Times are
// the thread's CPU time, so a busy machine inflates them less than wall time
// would. Run on an idle machine: taskset -c 1 bpf_bench
//
// `bpf_bench count json|bytecode N` runs one backend's run_msg N times
// untimed, for host instruction counts on a noisy machine: the difference of
// two callgrind totals (N and 0 runs) divided by N.
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <sys/socket.h>

#include <time.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bpf/check.h"
#include "bpf/vm.h"
#include "policy/bytecode_program.h"
#include "policy/policy.h"
#include "tools/fake_kernel.h"

using namespace sockshim::bpf;
namespace policy = sockshim::policy;

namespace {

bpf_insn insn(uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm) {
  bpf_insn i{};
  i.code = code;
  i.dst_reg = dst;
  i.src_reg = src;
  i.off = off;
  i.imm = imm;
  return i;
}
bpf_insn ldx_w(uint8_t dst, int16_t off) {
  return insn(BPF_LDX | BPF_W | BPF_MEM, dst, 1, off, 0);
}
bpf_insn jeq(uint8_t dst, int32_t imm, int16_t off) {
  return insn(BPF_JMP | BPF_JEQ | BPF_K, dst, 0, off, imm);
}
bpf_insn jmp(uint8_t op, uint8_t dst, int32_t imm, int16_t off) {
  return insn(BPF_JMP | op | BPF_K, dst, 0, off, imm);
}
bpf_insn mov(uint8_t dst, int32_t imm) {
  return insn(BPF_ALU64 | BPF_MOV | BPF_K, dst, 0, 0, imm);
}
bpf_insn exit_insn() {
  return insn(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
}

// The ten header rules of the policy benchmark; none holds for the socket
// below, so all are evaluated and the default (pass) decides.
std::vector<bpf_insn> header_rules() {
  const int16_t lp = offsetof(sk_msg_md, local_port), rp = offsetof(sk_msg_md, remote_port);
  std::vector<bpf_insn> p = {
      ldx_w(2, lp),
      ldx_w(3, rp),
      insn(BPF_ALU | BPF_END | BPF_TO_BE, 3, 0, 0, 32),  // remote_port to host order
      ldx_w(4, offsetof(sk_msg_md, family)),
      ldx_w(5, offsetof(sk_msg_md, local_ip4)),
      ldx_w(6, offsetof(sk_msg_md, remote_ip4)),
      ldx_w(7, offsetof(sk_msg_md, size)),
      jeq(2, 1, 0),
      jeq(2, 2, 0),
      jeq(2, 3, 0),
      jeq(2, 4, 0),
      jmp(BPF_JLT, 3, 10, 1),
      jmp(BPF_JLE, 3, 20, 0),
      jmp(BPF_JNE, 3, 5, 1),
      jeq(2, 6, 0),
      jeq(5, static_cast<int32_t>(htonl(0x0a000001)), 0),
      jeq(6, static_cast<int32_t>(htonl(0x0a000002)), 0),
      jeq(6, static_cast<int32_t>(htonl(0x0a000003)), 0),
      jeq(4, AF_INET6, 0),
      jmp(BPF_JGT, 7, 100000, 0),
      jmp(BPF_JNE, 4, AF_INET, 0),
      jeq(2, 7, 0),
      jeq(3, 8, 0),
      mov(0, SK_PASS),
      exit_insn()};
  // The rule jumps above have offset 0 as placeholders: aim them at a drop.
  const int16_t drop = static_cast<int16_t>(p.size());
  for (size_t i = 7; i + 2 < p.size(); ++i) {
    const bool skip_next = (i == 11 || i == 13);  // "not in range" / "not 5": next rule
    if (skip_next) continue;
    p[i].off = static_cast<int16_t>(drop - static_cast<int16_t>(i) - 1);
  }
  p.push_back(mov(0, SK_DROP));
  p.push_back(exit_insn());
  return p;
}

// A prefix test on the data: bounds check, an 8-byte compare.
std::vector<bpf_insn> prefix_rule() {
  return {insn(BPF_LDX | BPF_DW | BPF_MEM, 2, 1, offsetof(sk_msg_md, data), 0),
          insn(BPF_LDX | BPF_DW | BPF_MEM, 3, 1, offsetof(sk_msg_md, data_end), 0),
          insn(BPF_ALU64 | BPF_MOV | BPF_X, 4, 2, 0, 0),
          insn(BPF_ALU64 | BPF_ADD | BPF_K, 4, 0, 0, 8),
          mov(0, SK_PASS),
          insn(BPF_JMP | BPF_JGT | BPF_X, 4, 3, 5, 0),
          insn(BPF_LDX | BPF_DW | BPF_MEM, 5, 2, 0, 0),
          insn(BPF_LD | BPF_DW | BPF_IMM, 6, 0, 0, 0x53554c46),  // "FLUSHALL"
          insn(0, 0, 0, 0, 0x4c4c4148),
          insn(BPF_JMP | BPF_JNE | BPF_X, 5, 6, 1, 0),
          mov(0, SK_DROP),
          exit_insn()};
}

// Drops "FLUSHALL..." sent by an AF_INET socket on local port 6379, passes
// everything else: every test runs for the message the benchmark sends.
std::vector<bpf_insn> flush_guard() {
  const int16_t pass = 17;
  auto to_pass = [](int16_t at) { return static_cast<int16_t>(pass - at - 1); };
  return {ldx_w(2, offsetof(sk_msg_md, family)),
          jmp(BPF_JNE, 2, AF_INET, to_pass(1)),
          ldx_w(2, offsetof(sk_msg_md, local_port)),
          jmp(BPF_JNE, 2, 6379, to_pass(3)),
          ldx_w(2, offsetof(sk_msg_md, size)),
          jmp(BPF_JLT, 2, 8, to_pass(5)),
          insn(BPF_LDX | BPF_DW | BPF_MEM, 2, 1, offsetof(sk_msg_md, data), 0),
          insn(BPF_LDX | BPF_DW | BPF_MEM, 3, 1, offsetof(sk_msg_md, data_end), 0),
          insn(BPF_ALU64 | BPF_MOV | BPF_X, 4, 2, 0, 0),
          insn(BPF_ALU64 | BPF_ADD | BPF_K, 4, 0, 0, 8),
          insn(BPF_JMP | BPF_JGT | BPF_X, 4, 3, to_pass(10), 0),
          insn(BPF_LDX | BPF_DW | BPF_MEM, 5, 2, 0, 0),
          insn(BPF_LD | BPF_DW | BPF_IMM, 6, 0, 0, 0x53554c46),  // "FLUSHALL"
          insn(0, 0, 0, 0, 0x4c4c4148),
          insn(BPF_JMP | BPF_JNE | BPF_X, 5, 6, to_pass(14), 0),
          mov(0, SK_DROP),
          exit_insn(),
          mov(0, SK_PASS),
          exit_insn()};
}

const char* kFlushGuardPolicy = R"({"version": 1, "maps": {},
  "programs": {"guard": {"type": "sk_msg", "rules": [
    {"if": {"family": "AF_INET", "local_port": 6379, "size": {"ge": 8},
            "data": {"prefix": "FLUSHALL"}},
     "do": ["drop"]}]}},
  "attach": []})";

volatile uint64_t g_sink;

double cpu_ns() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e9 + static_cast<double>(ts.tv_nsec);
}

template <typename F>
double measure(F&& f) {
  constexpr int kBatches = 7;
  size_t n = 1000;
  for (;;) {  // size a batch to ~20 ms
    const double t0 = cpu_ns();
    for (size_t i = 0; i < n; ++i) g_sink = f();
    if (cpu_ns() - t0 > 20e6) break;
    n *= 2;
  }
  std::vector<double> ns;
  for (int b = 0; b < kBatches; ++b) {
    const double t0 = cpu_ns();
    for (size_t i = 0; i < n; ++i) g_sink = f();
    ns.push_back((cpu_ns() - t0) / static_cast<double>(n));
  }
  std::sort(ns.begin(), ns.end());
  return ns[kBatches / 2];
}

// The JSON rule and the bytecode program through Program::run_msg, on a
// message that passes after every test ran. count_runs > 0: only run
// `count_backend` that many times (see the top of the file).
int compare_backends(const char* count_backend = nullptr, long count_runs = 0) {
  policy::LoadResult loaded = policy::load_policy_text(kFlushGuardPolicy);
  if (!loaded.ok()) {
    fprintf(stderr, "policy: %s\n", loaded.errors.at(0).message.c_str());
    return 1;
  }
  const policy::Program& json = *loaded.policy->programs.at(0);
  const std::vector<bpf_insn> insns = flush_guard();
  std::unique_ptr<policy::Program> bytecode;
  std::string log;
  if (policy::load_bytecode_program("guard", policy::ProgramType::sk_msg, insns, {}, &bytecode,
                                    &log) != 0) {
    fprintf(stderr, "bytecode: %s\n", log.c_str());
    return 1;
  }
  policy::FakeKernel kernel(*loaded.policy);
  policy::SocketTuple sk;
  sk.family = AF_INET;
  sk.local_ip4 = sk.remote_ip4 = htonl(0x7f000001);
  sk.local_port = 6379;
  sk.remote_port = 40000;
  const std::string text = "FLUSHDB and more, 64 bytes of a message...................";
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(text.data()), text.size());
  policy::SkMsg msg;
  auto run = [&](const policy::Program& p) {
    msg.assign(bytes);
    return p.run_msg(msg, sk, kernel);
  };
  for (const policy::Program* p : {&json, static_cast<const policy::Program*>(bytecode.get())}) {
    const policy::RunResult r = run(*p);
    if (r.ret != SK_PASS || p->faults() != 0) {
      fprintf(stderr, "%s backend: unexpected ret %d\n", p->is_bytecode() ? "bytecode" : "json",
              r.ret);
      return 1;
    }
  }
  if (count_backend) {
    const policy::Program& p = std::string(count_backend) == "json" ? json : *bytecode;
    for (long i = 0; i < count_runs; ++i) g_sink = run(p).ret;
    return 0;
  }
  const uint64_t insns_per_run = run(*bytecode).insns;
  constexpr int kRounds = 5;
  std::vector<double> json_ns, bc_ns;
  for (int i = 0; i < kRounds; ++i) {
    json_ns.push_back(measure([&] { return run(json).ret; }));
    bc_ns.push_back(measure([&] { return run(*bytecode).ret; }));
  }
  std::sort(json_ns.begin(), json_ns.end());
  std::sort(bc_ns.begin(), bc_ns.end());
  printf("\nProgram::run_msg, the same sk_msg guard (%d interleaved rounds, medians)\n", kRounds);
  printf("%-44s %8s %12s %10s\n", "backend", "insns", "insns/run", "ns/run");
  printf("%-44s %8s %12s %10.1f\n", "JSON rule (4 conditions)", "-", "-", json_ns[kRounds / 2]);
  printf("%-44s %8zu %12llu %10.1f\n", "bytecode", insns.size(),
         static_cast<unsigned long long>(insns_per_run), bc_ns[kRounds / 2]);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "count" &&
      (std::string(argv[2]) == "json" || std::string(argv[2]) == "bytecode"))
    return compare_backends(argv[2], strtol(argv[3], nullptr, 10));
  if (argc != 1) {
    fprintf(stderr, "usage: bpf_bench [count json|bytecode RUNS]\n");
    return 2;
  }
  sk_msg_md md{};
  md.family = AF_INET;
  md.local_ip4 = md.remote_ip4 = htonl(0x7f000001);
  md.local_port = 40000;
  md.remote_port = htonl(6379);
  std::string data(64, 'a');
  md.size = static_cast<uint32_t>(data.size());
  RunInput in;
  in.ctx = &md;
  in.ctx_ptrs[kSlotData] = reinterpret_cast<uint64_t>(data.data());
  in.ctx_ptrs[kSlotDataEnd] = reinterpret_cast<uint64_t>(data.data() + data.size());

  struct Case {
    const char* name;
    std::vector<bpf_insn> insns;
  };
  const Case cases[] = {{"sk_msg, 10 header-only rules (bytecode)", header_rules()},
                        {"sk_msg, 8-byte prefix test (bytecode)", prefix_rule()}};
  Vm vm;
  printf("%-44s %8s %12s %10s\n", "case", "insns", "insns/run", "ns/run");
  for (const Case& c : cases) {
    LoadedProgram prog;
    std::string log;
    LoadOptions o;
    if (load_program(c.insns, o, &prog, &log) != 0) {
      fprintf(stderr, "%s: %s\n", c.name, log.c_str());
      return 1;
    }
    const RunResult r = vm.run(prog, in);
    if (!r.ok() || r.r0 != SK_PASS) {
      fprintf(stderr, "%s: unexpected result %s r0=%llu\n", c.name, fault_kind_name(r.fault.kind),
              static_cast<unsigned long long>(r.r0));
      return 1;
    }
    const double ns = measure([&] { return vm.run(prog, in).r0; });
    printf("%-44s %8zu %12llu %10.1f\n", c.name, c.insns.size(),
           static_cast<unsigned long long>(r.insns), ns);
  }
  return compare_backends();
}
