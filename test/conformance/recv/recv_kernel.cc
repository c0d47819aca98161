// The kernel side: recv_progs.bpf.o loaded once; each row writes its config,
// attaches the row's parser and verdict to rx (programs reach a psock only at
// insertion, so the row's sockets get exactly these) and inserts from user space.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <string.h>

#include "recv_backends.h"

namespace recv_conf {
namespace {

// struct cfg of recv_progs.bpf.c.
struct Cfg {
  uint32_t parser, fixed, max;
  uint32_t verdict, ingress;
  uint32_t marker;
};

Cfg config(const Progs& p) {
  Cfg c{};
  c.parser = p.parser == Parser::fixed ? 1 : p.parser == Parser::length_prefix ? 2 : 0;
  c.fixed = p.fixed;
  c.max = p.max;
  c.verdict = p.action == Action::pass ? 0 : p.action == Action::drop ? 1 : 2;
  c.ingress = p.action == Action::redirect_ingress;
  if (!p.drop_marker.empty()) memcpy(&c.marker, p.drop_marker.data(), sizeof c.marker);
  return c;
}

}  // namespace

KernelSide::~KernelSide() {
  bpf_object__close(obj_);  // its maps and programs go with it
}

conformance::KernelOpen KernelSide::open(const char* object_path, std::string* why) {
  const conformance::KernelOpen status = conformance::open_bpf_object(object_path, &obj_, why);
  if (status != conformance::KernelOpen::ok) return status;
  rx_ = bpf_object__find_map_fd_by_name(obj_, "rx");
  redir_ = bpf_object__find_map_fd_by_name(obj_, "redir");
  conf_ = bpf_object__find_map_fd_by_name(obj_, "conf");
  parser_ = bpf_program__fd(bpf_object__find_program_by_name(obj_, "parser"));
  stream_verdict_ = bpf_program__fd(bpf_object__find_program_by_name(obj_, "stream_verdict"));
  skb_verdict_ = bpf_program__fd(bpf_object__find_program_by_name(obj_, "skb_verdict"));
  return conformance::KernelOpen::ok;
}

bool KernelSide::attach(const Progs& p) {
  // Detach what the previous row attached (ENOENT for an empty role is fine).
  bpf_prog_detach2(parser_, rx_, BPF_SK_SKB_STREAM_PARSER);
  bpf_prog_detach2(stream_verdict_, rx_, BPF_SK_SKB_STREAM_VERDICT);
  bpf_prog_detach2(skb_verdict_, rx_, BPF_SK_SKB_VERDICT);
  if (p.parser != Parser::none && bpf_prog_attach(parser_, rx_, BPF_SK_SKB_STREAM_PARSER, 0))
    return false;
  if (p.verdict == VerdictType::stream)
    return bpf_prog_attach(stream_verdict_, rx_, BPF_SK_SKB_STREAM_VERDICT, 0) == 0;
  return bpf_prog_attach(skb_verdict_, rx_, BPF_SK_SKB_VERDICT, 0) == 0;
}

Outcome KernelSide::run(const Row& row) {
  int zero = 0;
  Cfg c = config(row.progs);
  bpf_map_update_elem(conf_, &zero, &c, BPF_ANY);
  if (!attach(row.progs)) {
    Outcome o;
    o.probes.push_back(std::string("attach: ") + strerror(errno));
    return o;
  }
  // The row's sockets are closed by run_traffic, which removes them from the maps.
  return run_traffic(row, [&](int p1, int target) {
    if (bpf_map_update_elem(rx_, &zero, &p1, BPF_ANY)) return -errno;
    if (target >= 0 && bpf_map_update_elem(redir_, &zero, &target, BPF_ANY)) return -errno;
    return 0;
  });
}

}  // namespace recv_conf
