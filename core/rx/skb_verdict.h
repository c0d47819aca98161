// One run of a psock's receive-side verdict on a frame (sk_psock_verdict_recv,
// sk_psock_strp_read -> sk_psock_map_verd): what the program decided, with the
// redirect target it chose, counted per rule and in the psock's rx counters.
#pragma once

#include <cstdint>
#include <span>

#include "core/psock/psock.h"
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

}  // namespace sockshim
