// Interpreter cost: ns and instructions per run of hand-assembled sk_msg
// programs, the median of several timed batches. The first does what
// test/bench/policy's "10 header-only rules" policy does, so the two backends
// compare. Times are the thread's CPU time, so a busy machine inflates them
// less than wall time would. Run on an idle machine: taskset -c 1 bpf_bench
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

using namespace sockshim::bpf;

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

}  // namespace

int main() {
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
  return 0;
}
