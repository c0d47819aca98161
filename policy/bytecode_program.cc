#include "policy/bytecode_program.h"

#include <sys/socket.h>

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

// One Vm per thread, constant-initialised so that reaching it costs no
// guard. A helper never runs another program, but should one ever, the
// nested run gets its own Vm instead of clobbering the outer one.
[[gnu::always_inline]] inline bpf::RunResult execute(const Bytecode& bc, const bpf::RunInput& in) {
  constinit thread_local bpf::Vm vm;
  constinit thread_local bool busy = false;
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

// The state ctx->sk shows: what the socket of a sockmap is in (a sockops run
// says its op's own).
uint32_t sock_state(const SocketTuple& sk) noexcept {
  if (sk.type == SOCK_DGRAM && (sk.family == AF_INET || sk.family == AF_INET6) && !sk.remote_port)
    return BPF_TCP_CLOSE;
  return BPF_TCP_ESTABLISHED;
}

// RunInput::complete: the context fields the run did not fill up front and
// the socket behind ctx->sk.
void complete(void* user) noexcept {
  auto* run = static_cast<BytecodeRun*>(user);
  if (run->md) fill_sk_msg_md(run->md, *run->msg, *run->tuple, ~uint64_t{0});
  if (run->sock)
    fill_bpf_sock(run->sock, *run->tuple, run->ops ? run->ops->state : sock_state(*run->tuple));
}

[[gnu::always_inline]] inline bpf::RunInput input(void* ctx, uint64_t data, uint64_t data_end,
                                                  BytecodeRun* run) {
  bpf::RunInput in;
  in.ctx = ctx;
  in.ctx_ptrs[bpf::kSlotData] = data;
  in.ctx_ptrs[bpf::kSlotDataEnd] = data_end;
  in.ctx_ptrs[bpf::kSlotSk] = run->sk_token();
  in.sock = run->sock;
  in.complete = complete;
  in.user = run;
  return in;
}

// The run's instruction count and fault, for the caller and a tracer.
[[gnu::always_inline]] inline void report(const bpf::RunResult& r, RunResult* res, Tracer* tracer) {
  res->insns = r.insns;
  if (__builtin_expect(!r.ok(), 0))
    res->fault = {bpf::fault_kind_name(r.fault.kind), r.fault.insn, r.fault.addr};
  if (tracer) tracer->bytecode_run(res->insns, res->fault);
}

// sk_psock_map_verd: SK_PASS with a redirect target is a redirect, SK_PASS a
// pass, anything else (a fault's SK_DROP included) a drop.
[[gnu::always_inline]] inline RunResult verdict(const Program& p, const Bytecode& bc,
                                                const bpf::RunResult& r, const BytecodeRun& run,
                                                Tracer* tracer) {
  RunResult res;
  report(r, &res, tracer);
  if (__builtin_expect(!r.ok(), 0)) {
    note_fault(p, bc, r, run.helpers);
    res.ret = SK_DROP;
    res.verdict = Verdict::drop;
    return res;
  }
  res.ret = static_cast<int>(static_cast<uint32_t>(r.r0));
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
                           Helpers& h, Tracer* tracer) {
  // Neither is zeroed: the fields the program loads through ctx are filled
  // now, the rest and the socket only if the run reaches them otherwise
  // (complete()); the pointer slots the VM answers from RunInput::ctx_ptrs.
  sk_msg_md md;
  bpf_sock sock;
  fill_sk_msg_md(&md, msg, sk, bc.prog.ctx_reads);
  BytecodeRun run{&p, &h};
  run.msg = &msg;
  run.md = &md;
  run.tuple = &sk;
  run.sock = &sock;
  uint64_t data, data_end;
  msg_window(msg, &data, &data_end);
  bpf::RunInput in = input(&md, data, data_end, &run);
  in.packet_writable = true;
  return verdict(p, bc, execute(bc, in), run, tracer);
}

// A writable frame is the program's to rewrite (direct writes,
// bpf_skb_store_bytes): what it leaves there is what the reader gets.
RunResult bytecode_run_skb(const Program& p, const Bytecode& bc, std::span<const uint8_t> frame,
                           bool writable, const SocketTuple& sk, Helpers& h, Tracer* tracer) {
  __sk_buff skb{};
  bpf_sock sock;
  const auto len = static_cast<uint32_t>(frame.size());
  fill_sk_buff(&skb, len, sk);
  BytecodeRun run{&p, &h};
  run.skb_len = len;
  run.tuple = &sk;
  run.sock = &sock;
  const auto data = reinterpret_cast<uint64_t>(frame.data());
  bpf::RunInput in = input(&skb, data, data + len, &run);
  in.packet_writable = writable;
  return verdict(p, bc, execute(bc, in), run, tracer);
}

// The return value and reply are not used: core's sockops runs have no
// caller that reads them (the kernel's are for TCP options and timers).
RunResult bytecode_run_sockops(const Program& p, const Bytecode& bc, SockOp op,
                               const SocketTuple& sk, Helpers& h, Tracer* tracer) {
  bpf_sock_ops ops{};
  bpf_sock sock;
  fill_sock_ops(&ops, op, sk);
  BytecodeRun run{&p, &h};
  run.ops = &ops;
  run.tuple = &sk;
  run.sock = &sock;
  const bpf::RunResult r = execute(bc, input(&ops, 0, 0, &run));
  if (!r.ok()) note_fault(p, bc, r, &h);
  RunResult res;
  report(r, &res, tracer);
  res.ret = 1;
  return res;
}

// strparser: the program's return is the frame length, 0 for more bytes, or a
// negative errno for the socket. Without a socket and Helpers (a caller that
// has none) the context has len and data only and helpers that act on a
// socket or a map fault. A fault is -EFAULT, logged when there are Helpers.
int64_t bytecode_parse(const Program& p, const Bytecode& bc, std::span<const uint8_t> buf,
                       const SocketTuple* sk, Helpers* h) noexcept {
  try {
    __sk_buff skb{};
    bpf_sock sock;
    const auto len = static_cast<uint32_t>(buf.size());
    if (sk)
      fill_sk_buff(&skb, len, *sk);
    else
      skb.len = len;
    BytecodeRun run{&p, h};
    run.skb_len = len;
    if (sk) {
      run.tuple = sk;
      run.sock = &sock;
    }
    const auto data = reinterpret_cast<uint64_t>(buf.data());
    const bpf::RunResult r = execute(bc, input(&skb, data, data + len, &run));
    if (!r.ok()) {
      note_fault(p, bc, r, h);
      return -EFAULT;
    }
    return static_cast<int32_t>(static_cast<uint32_t>(r.r0));
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
}

}  // namespace sockshim::policy
