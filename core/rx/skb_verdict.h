// One run of a psock's receive-side verdict on a frame (sk_psock_verdict_recv,
// sk_psock_strp_read -> sk_psock_map_verd): what the program decided, with the
// redirect target it chose, counted per rule and in the psock's rx counters.
#pragma once

#include <cstdint>
#include <span>

#include "core/psock/psock.h"
#include "core/psock/strparser.h"
#include "policy/program.h"

namespace sockshim {

struct SkbVerdict {
  policy::Verdict verdict = policy::Verdict::drop;
  PsockRef target;  // set for a redirect
  bool ingress = false;
};

// Runs prog (the psock's stream or skb verdict) on frame, which a bytecode
// program may rewrite in place (the kernel's sk_skb programs may). A redirect whose
// helper found no allowed target is the drop the kernel makes of it; a program
// that throws is a drop, logged. The caller holds a reference on psock.
SkbVerdict skb_verdict_run(Psock* psock, const policy::Program& prog,
                           std::span<uint8_t> frame) noexcept;

// Runs the psock's stream parser on strp's head (Strparser::parse). A
// bytecode parser gets the socket and its policy's helpers, so it can read
// its maps as in the kernel; a rule parser needs neither.
int64_t stream_parser_run(Psock* psock, const policy::Program& parser, Strparser& strp,
                          size_t rcvbuf) noexcept;

}  // namespace sockshim
