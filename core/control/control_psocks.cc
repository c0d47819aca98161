#include "core/control/control_psocks.h"

#include <sched.h>

#include "core/control/control_programs.h"
#include "core/control/socket_index.h"
#include "core/psock/psock.h"
#include "core/psock/psock_stats.h"
#include "core/psock/sk_msg_queue.h"
#include "core/rx/sk_psock_rx.h"
#include "core/sock/registry.h"

namespace sockshim::control {

using nlohmann::json;

namespace {

json counters(const DirSnapshot& d) {
  return {{"in", d.in},         {"pushed", d.pushed},   {"popped", d.popped},
          {"passed", d.passed}, {"dropped", d.dropped}, {"redirected", d.redirected},
          {"queued", d.held},   {"runs", d.runs}};
}

bool adds_up(const DirSnapshot& d) {
  return d.in + d.pushed - d.popped == d.passed + d.dropped + d.redirected + d.held;
}

// The receive engine changes its counters and its held bytes one after the
// other, without the send path's sequence count: read again while a change
// is half made (a few tries; a lasting mismatch is shown as it is).
DirSnapshot rx_snapshot(Psock* p, const PsockDirStats& s) {
  DirSnapshot d;
  for (int tries = 0; tries < 100; ++tries) {
    d = dir_snapshot(s);
    d.held = sk_psock_rx_held(p);
    if (adds_up(d)) break;
    sched_yield();
  }
  return d;
}

}  // namespace

json dump_psocks() {
  SocketIndex sockets;
  json out = json::array();
  for (const auto& [cookie, entry] : sockets.by_cookie) {
    SocketRef ref = registry::get(entry.fds.front());
    if (ref.get() != entry.sk) continue;
    PsockRef p = psock_get(ref.get());
    if (!p) continue;
    MapProgs progs{p->progs.msg_parser.load(), p->progs.stream_parser.load(),
                   p->progs.stream_verdict.load(), p->progs.skb_verdict.load()};
    size_t links;
    {
      std::lock_guard g(p->link_lock);
      links = p->links.size();
    }
    const PsockStats& st = p->stats;
    json e = sockets.describe(cookie);
    e["programs"] = program_names(progs);
    e["links"] = links;
    e["ingress_bytes"] = sk_psock_msg_inq(p.get());
    DirSnapshot tx = dir_snapshot(st.tx), rx = rx_snapshot(p.get(), st.rx);
    DirSnapshot total{tx.in + rx.in,         tx.pushed + rx.pushed,   tx.popped + rx.popped,
                      tx.passed + rx.passed, tx.dropped + rx.dropped, tx.redirected + rx.redirected,
                      tx.runs + rx.runs,     tx.held + rx.held};
    uint64_t ingress_in = st.ingress_in.load(std::memory_order_relaxed);
    json stats = {{"tx", counters(tx)},
                  {"rx", counters(rx)},
                  {"total", counters(total)},
                  {"ingress_in", ingress_in},
                  // The name ingress_in had before the counters were bytes per direction.
                  {"queued", ingress_in}};
    stats["total"].erase("runs");
    e["stats"] = std::move(stats);
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace sockshim::control
