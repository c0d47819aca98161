#include "core/rx/skb_verdict.h"

#include <exception>

#include "core/maps/bpf_helpers.h"
#include "core/maps/loaded_policy.h"
#include "core/psock/psock_stats.h"
#include "core/sock/log.h"

namespace sockshim {

SkbVerdict skb_verdict_run(Psock* psock, const policy::Program& prog,
                           std::span<uint8_t> frame) noexcept {
  SkbVerdict out;
  Socket* sk = psock->sk();
  // Its own policy, also mid-reload: the map indices the program names are its.
  std::shared_ptr<const LoadedPolicy> lp = policy_of(&prog);
  if (sk && lp) {
    try {
      // fd -1: the engine never uses the application's fd numbers.
      SockHelpers helpers(*lp, prog.type(), sk, -1);
      policy::RunResult res = prog.run_skb(frame, socket_tuple(*sk), helpers);
      out.verdict = res.verdict;
      if (out.verdict == policy::Verdict::redirect) {
        out.target = helpers.take_redirect();
        out.ingress = helpers.redirect_ingress();
        if (!out.target) out.verdict = policy::Verdict::drop;
      }
      rule_stats_count(prog, res.rule, out.verdict);
    } catch (const std::exception& ex) {
      log::internal_error("sk_skb verdict", ex.what());
      out = SkbVerdict{};
    }
  }
  psock->stats.rx.ran();
  return out;
}

int64_t stream_parser_run(Psock* psock, const policy::Program& parser, Strparser& strp,
                          size_t rcvbuf) noexcept {
  Socket* sk = psock->sk();
  if (!parser.is_bytecode() || !sk) return strp.parse(parser, rcvbuf);
  std::shared_ptr<const LoadedPolicy> lp = policy_of(&parser);
  if (!lp) return strp.parse(parser, rcvbuf);
  SockHelpers helpers(*lp, parser.type(), sk, -1);
  const policy::SocketTuple tuple = socket_tuple(*sk);
  return strp.parse(parser, rcvbuf, &tuple, &helpers);
}

}  // namespace sockshim
