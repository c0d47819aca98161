// A compiled program of a policy: what core runs on a socket. No JSON remains;
// running one allocates nothing except what push_data inserts into the message.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "policy/context.h"
#include "policy/helpers.h"
#include "policy/sk_msg.h"
#include "policy/spec.h"
#include "policy/stream_parser.h"

namespace sockshim::policy {

const char* program_type_name(ProgramType t) noexcept;

const char* verdict_name(Verdict v) noexcept;

// A bytecode run's fault (bpf::Fault in words): what the run did wrong and at
// which instruction; the run returned SK_DROP.
struct BytecodeFault {
  const char* kind = nullptr;  // "invalid memory read", ... (bpf::fault_kind_name); null: none
  uint32_t insn = 0;           // the instruction's index
  uint64_t addr = 0;           // the address accessed, for memory faults; else 0
};

struct RunResult {
  int ret = SK_PASS;  // the program's return value (SK_PASS / SK_DROP; 1 for sockops)
  Verdict verdict = Verdict::pass;
  int32_t rule = -1;    // index of the rule whose `if` held; -1 when none did
  uint64_t insns = 0;   // bytecode: instructions the run executed
  BytecodeFault fault;  // bytecode: the fault, if the run had one
};

// Optional observer of each action a run performs (test-run prints them; core
// passes nullptr). ret is the helper's return value (0 / -errno / SK_PASS /
// SK_DROP). A bytecode run reports no actions, but its end: the instructions
// it executed and its fault (kind null when none).
class Tracer {
 public:
  virtual ~Tracer() = default;
  virtual void action(size_t rule, size_t index, std::string_view name, long ret) = 0;
  virtual void bytecode_run(uint64_t /*insns*/, const BytecodeFault& /*fault*/) {}
};

struct CompiledProgram;  // policy/compiled.h
struct Bytecode;         // policy/bytecode.h

class Program {
 public:
  Program(std::string name, ProgramType type, std::unique_ptr<CompiledProgram> compiled);
  // An eBPF program: see load_bytecode_program (policy/bytecode_program.h).
  Program(std::string name, ProgramType type, std::unique_ptr<Bytecode> bytecode);
  ~Program();
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;

  const std::string& name() const noexcept { return name_; }
  ProgramType type() const noexcept { return type_; }
  bool is_verdict() const noexcept {
    return type_ == ProgramType::sk_msg || type_ == ProgramType::stream_verdict ||
           type_ == ProgramType::skb_verdict;
  }
  // True when the program reads or changes message bytes (a `data` condition,
  // pull/push/pop; always for bytecode): otherwise sendfile may stay zero-copy.
  bool needs_data() const noexcept;
  size_t rule_count() const noexcept;
  // sk_msg: the kernel keeps failing every later send of a socket after a DROP
  // until its psock is re-created; `"sticky_drop": false` asks core to drop the
  // one message only (DESIGN.md's documented difference). Default true.
  bool sticky_drop() const noexcept;
  // Returned when no rule holds or the rule that held has no verdict action
  // (bytecode: SK_DROP, what a faulting run returns).
  int default_ret() const noexcept;

  // sk_msg: the window msg.data() is what `data` conditions see; `size` is
  // msg.size(). Actions change msg (apply/cork values, bytes, window).
  RunResult run_msg(SkMsg& msg, const SocketTuple& sk, Helpers& helpers,
                    Tracer* tracer = nullptr) const;
  // sk_skb/stream_verdict and sk_skb/verdict: frame is the parsed message (or
  // the chunk read, without a parser); `len` is its length. A bytecode
  // program may rewrite a writable frame's bytes, as the kernel lets it; in a
  // read-only one such a write faults.
  RunResult run_skb(std::span<const uint8_t> frame, const SocketTuple& sk, Helpers& helpers,
                    Tracer* tracer = nullptr) const;
  RunResult run_skb(std::span<uint8_t> frame, const SocketTuple& sk, Helpers& helpers,
                    Tracer* tracer = nullptr) const;
  // sockops: runs the first rule that holds for this op. ret is 1.
  RunResult run_sockops(SockOp op, const SocketTuple& sk, Helpers& helpers,
                        Tracer* tracer = nullptr) const;
  // sk_skb/stream_parser: parse_frame() with this program's frame spec. A
  // bytecode parser also gets the socket and helpers when the caller has
  // them (its maps; the kernel's parser context is the socket's __sk_buff).
  int64_t parse(std::span<const uint8_t> buf, const SocketTuple* sk = nullptr,
                Helpers* helpers = nullptr) const noexcept;
  const FrameSpec& frame() const noexcept;

  const CompiledProgram& compiled() const noexcept { return *compiled_; }

  // Bytecode programs run in the eBPF interpreter; a run that faults returns
  // SK_DROP and is counted here.
  bool is_bytecode() const noexcept { return bytecode_ != nullptr; }
  uint64_t faults() const noexcept;

 private:
  std::string name_;
  ProgramType type_;
  std::unique_ptr<CompiledProgram> compiled_;  // empty (no rules) for bytecode
  std::unique_ptr<Bytecode> bytecode_;
};

}  // namespace sockshim::policy
