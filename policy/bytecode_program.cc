#include "policy/bytecode_program.h"

#include <cerrno>
#include <cstdio>
#include <memory>
#include <new>
#include <string>

#include "bpf/vm.h"
#include "policy/bytecode.h"
#include "policy/bytecode_run.h"

namespace sockshim::policy {
namespace {

// One Vm per thread. A helper never runs another program, but should one
// ever, the nested run gets its own Vm instead of clobbering the outer one.
bpf::RunResult execute(const Bytecode& bc, const bpf::RunInput& in) {
  thread_local bpf::Vm vm;
  thread_local bool busy = false;
  if (busy) return std::make_unique<bpf::Vm>()->run(bc.prog, in);
  busy = true;
  bpf::RunResult r = vm.run(bc.prog, in);
  busy = false;
  return r;
}

// A fault: counted, and logged once per program with the instruction index.
void note_fault(const Program& p, const Bytecode& bc, const bpf::RunResult& r, Helpers* h) {
  bc.faults.fetch_add(1, std::memory_order_relaxed);
  if (!h || bc.fault_logged.exchange(true)) return;
  char addr[32] = "";
  if (r.fault.addr) snprintf(addr, sizeof addr, " at 0x%llx", (unsigned long long)r.fault.addr);
  h->log(p, "bytecode fault at insn " + std::to_string(r.fault.insn) + ": " +
                bpf::fault_kind_name(r.fault.kind) + addr +
                "; the run returns SK_DROP (logged once per program)");
}

bpf::RunInput input(void* ctx, uint64_t data, uint64_t data_end, BytecodeRun* run) {
  bpf::RunInput in;
  in.ctx = ctx;
  in.ctx_ptrs[bpf::kSlotData] = data;
  in.ctx_ptrs[bpf::kSlotDataEnd] = data_end;
  in.ctx_ptrs[bpf::kSlotSk] = run->helpers ? run->sk_token() : 0;
  in.user = run;
  return in;
}

// sk_psock_map_verd: SK_PASS with a redirect target is a redirect, SK_PASS a
// pass, anything else (a fault's SK_DROP included) a drop.
RunResult verdict(const Program& p, const Bytecode& bc, const bpf::RunResult& r,
                  const BytecodeRun& run) {
  RunResult res;
  res.insns = r.insns;
  if (!r.ok()) note_fault(p, bc, r, run.helpers);
  res.ret = r.ok() ? static_cast<int>(static_cast<uint32_t>(r.r0)) : SK_DROP;
  res.verdict = res.ret != SK_PASS ? Verdict::drop
                : run.redirected   ? Verdict::redirect
                                   : Verdict::pass;
  return res;
}

}  // namespace

bpf::ProgType bpf_prog_type(ProgramType t) noexcept {
  switch (t) {
    case ProgramType::sk_msg:
      return bpf::ProgType::sk_msg;
    case ProgramType::sockops:
      return bpf::ProgType::sock_ops;
    default:
      return bpf::ProgType::sk_skb;
  }
}

int load_bytecode_program(std::string name, ProgramType type, bpf::InsnSpan insns,
                          const bpf::MapResolver& resolve, std::unique_ptr<Program>* out,
                          std::string* log) {
  auto bc = std::make_unique<Bytecode>();
  bpf::LoadOptions o;
  o.type = bpf_prog_type(type);
  o.helpers = &bytecode_helpers();
  if (resolve)
    o.resolve_map = [&resolve](uint8_t pseudo, int32_t fd, uint32_t off, bpf::MapRef* ref) {
      const int r = resolve(pseudo, fd, off, ref);
      if (r == 0 && (pseudo == BPF_PSEUDO_MAP_FD || pseudo == BPF_PSEUDO_MAP_IDX)) {
        if (ref->value > UINT32_MAX) return -EINVAL;
        ref->value |= kMapHandleTag;
      }
      return r;
    };
  if (int r = bpf::load_program(insns, o, &bc->prog, log)) return r;
  *out = std::make_unique<Program>(std::move(name), type, std::move(bc));
  return 0;
}

RunResult bytecode_run_msg(const Program& p, const Bytecode& bc, SkMsg& msg, const SocketTuple& sk,
                           Helpers& h) {
  // Not zeroed: fill_sk_msg_md sets every field but the pointer slots, which
  // the VM answers from RunInput::ctx_ptrs without reading the struct.
  sk_msg_md md;
  fill_sk_msg_md(&md, msg, sk);
  BytecodeRun run{&p, &h};
  run.msg = &msg;
  run.md = &md;
  uint64_t data, data_end;
  msg_window(msg, &data, &data_end);
  bpf::RunInput in = input(&md, data, data_end, &run);
  in.packet_writable = true;
  return verdict(p, bc, execute(bc, in), run);
}

// Core hands the frame over read-only: a direct packet write faults (see
// bpf/README.md).
RunResult bytecode_run_skb(const Program& p, const Bytecode& bc, std::span<const uint8_t> frame,
                           const SocketTuple& sk, Helpers& h) {
  __sk_buff skb{};
  const auto len = static_cast<uint32_t>(frame.size());
  fill_sk_buff(&skb, len, sk);
  BytecodeRun run{&p, &h};
  run.skb_len = len;
  const auto data = reinterpret_cast<uint64_t>(frame.data());
  return verdict(p, bc, execute(bc, input(&skb, data, data + len, &run)), run);
}

// The return value and reply are not used: core's sockops runs have no
// caller that reads them (the kernel's are for TCP options and timers).
RunResult bytecode_run_sockops(const Program& p, const Bytecode& bc, SockOp op,
                               const SocketTuple& sk, Helpers& h) {
  bpf_sock_ops ops{};
  fill_sock_ops(&ops, op, sk);
  BytecodeRun run{&p, &h};
  run.ops = &ops;
  const bpf::RunResult r = execute(bc, input(&ops, 0, 0, &run));
  if (!r.ok()) note_fault(p, bc, r, &h);
  RunResult res;
  res.insns = r.insns;
  res.ret = 1;
  return res;
}

// strparser: the program's return is the frame length, 0 for more bytes, or a
// negative errno for the socket. Core's parser has no socket or Helpers to
// give: the context has len and data only, helpers that act on a socket or a
// map fault, and a fault (counted, not logged) is -EFAULT.
int64_t bytecode_parse(const Program& p, const Bytecode& bc,
                       std::span<const uint8_t> buf) noexcept {
  try {
    __sk_buff skb{};
    const auto len = static_cast<uint32_t>(buf.size());
    skb.len = len;
    BytecodeRun run{&p, nullptr};
    run.skb_len = len;
    const auto data = reinterpret_cast<uint64_t>(buf.data());
    const bpf::RunResult r = execute(bc, input(&skb, data, data + len, &run));
    if (!r.ok()) {
      note_fault(p, bc, r, nullptr);
      return -EFAULT;
    }
    return static_cast<int32_t>(static_cast<uint32_t>(r.r0));
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
}

}  // namespace sockshim::policy
