// The loaded form of a bytecode Program and the runs Program dispatches to
// (bytecode_program.cc). Internal to policy/; it names policy types only by
// declaration, so program.cc can include it.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>

#include "bpf/program.h"

namespace sockshim::policy {

class Program;
class Helpers;
class Tracer;
class SkMsg;
struct SocketTuple;
struct RunResult;
enum class SockOp : uint32_t;

struct Bytecode {
  bpf::LoadedProgram prog;
  mutable std::atomic<uint64_t> faults{0};
  mutable std::atomic<bool> fault_logged{false};
};

// Each reports the run's end to `tracer` when there is one.
RunResult bytecode_run_msg(const Program& p, const Bytecode& bc, SkMsg& msg, const SocketTuple& sk,
                           Helpers& h, Tracer* tracer);
RunResult bytecode_run_skb(const Program& p, const Bytecode& bc, std::span<const uint8_t> frame,
                           bool writable, const SocketTuple& sk, Helpers& h, Tracer* tracer);
RunResult bytecode_run_sockops(const Program& p, const Bytecode& bc, SockOp op,
                               const SocketTuple& sk, Helpers& h, Tracer* tracer);
int64_t bytecode_parse(const Program& p, const Bytecode& bc, std::span<const uint8_t> buf,
                       const SocketTuple* sk, Helpers* h) noexcept;

}  // namespace sockshim::policy
