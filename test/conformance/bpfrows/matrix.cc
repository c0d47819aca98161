// The test_sockmap send matrix (test/conformance/send) through the bytecode
// backend: send_progs.bpf.o's msg_prog, configured per row through its conf
// map, on c1 in txmap with c2 in redir. One transcript line per row, shape
// and send call: the map updates' results, each send's result (RESULTxCOUNT
// for a run of equal results), then the bytes at p1, c2 and p2 as
// length:FNV-1a hash:end (length:end where push inserts bytes the kernel
// leaves uninitialised).
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "rows.h"
#include "test/conformance/send/send_matrix.h"
#include "test/support/loopback.h"
#include "transcript.h"

namespace bpfrows {
namespace {

using ::send_matrix::Cfg;
using ::send_matrix::Shape;

// FNV-1a, enough to tell byte streams apart in a transcript.
std::string digest(const std::string& b) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : b) h = (h ^ ch) * 1099511628211ull;
  char s[24];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(h));
  return s;
}

void connect_pair(test_support::LoopbackPair& pair) {
  if (!pair.connect()) setup_failed("a loopback TCP pair");
  const timeval bound{5, 0};  // a blocked send fails instead of hanging the row
  for (int fd : {pair.c, pair.p}) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &bound, sizeof bound);
}

std::string one(Ctx& c, const Cfg& cfg, const Shape& shape, bool use_sendfile) {
  const int txmap = bpf_object__find_map_fd_by_name(c.obj, "txmap");
  const int redir = bpf_object__find_map_fd_by_name(c.obj, "redir");
  const int conf = bpf_object__find_map_fd_by_name(c.obj, "conf");
  int zero = 0;
  std::string s = "conf=" + std::to_string(bpf_map_update_elem(conf, &zero, &cfg, BPF_ANY));
  test_support::LoopbackPair a, b;
  connect_pair(a);
  connect_pair(b);
  s += " tx=" + std::to_string(bpf_map_update_elem(txmap, &zero, &a.c, BPF_ANY));
  s += " redir=" + std::to_string(bpf_map_update_elem(redir, &zero, &b.c, BPF_ANY));
  Reader p1("p1", a.p), c2("c2", b.c), p2("p2", b.p);
  const size_t per = shape.iov_len * shape.iov_count;
  std::string data(per * shape.sends, 0);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i % per);
  char path[] = "/tmp/sockshim-bpfrows-XXXXXX";
  int file = -1;
  if (use_sendfile) {
    file = mkstemp(path);
    if (file < 0) setup_failed("mkstemp");
    unlink(path);
    if (write(file, data.data(), data.size()) != static_cast<ssize_t>(data.size()))
      setup_failed("write");
  }
  // Each distinct result once, with its count: 1024 sends of one byte.
  std::vector<std::pair<ssize_t, int>> results;
  std::vector<iovec> iov(shape.iov_count);
  for (size_t n = 0; n < shape.sends; ++n) {
    ssize_t r;
    if (use_sendfile) {
      off_t off = static_cast<off_t>(n * per);
      r = sendfile(a.c, file, &off, per);
    } else {
      for (size_t i = 0; i < shape.iov_count; ++i)
        iov[i] = {&data[n * per + i * shape.iov_len], shape.iov_len};
      msghdr m{};
      m.msg_iov = iov.data();
      m.msg_iovlen = iov.size();
      r = sendmsg(a.c, &m, MSG_NOSIGNAL);
    }
    if (r < 0) r = -errno;
    if (results.empty() || results.back().first != r)
      results.push_back({r, 1});
    else
      results.back().second++;
  }
  if (file >= 0) close(file);
  s += " sends=";
  for (size_t i = 0; i < results.size(); ++i)
    s +=
        (i ? "," : "") + std::to_string(results[i].first) + "x" + std::to_string(results[i].second);
  for (int fd : {a.c, a.p, b.c, b.p}) shutdown(fd, SHUT_WR);
  const bool lengths_only = cfg.push_len != 0;
  for (Reader* r : {&p1, &c2, &p2}) {
    const Reader::Result got = r->result();
    s += std::string(" ") + r->name() + "=" + std::to_string(got.bytes.size()) +
         (lengths_only ? "" : ":" + digest(got.bytes)) + ":" + got.end;
  }
  bpf_map_delete_elem(txmap, &zero);
  bpf_map_delete_elem(redir, &zero);
  return s;
}

void send_matrix(Ctx& c) {
  call("bpf_prog_attach(msg_prog, txmap, sk_msg_verdict)",
       bpf_prog_attach(bpf_program__fd(bpf_object__find_program_by_name(c.obj, "msg_prog")),
                       bpf_object__find_map_fd_by_name(c.obj, "txmap"), BPF_SK_MSG_VERDICT, 0));
  for (const ::send_matrix::Row& row : ::send_matrix::rows()) {
    // "redirect wait send mem" closes its target: its outcome on the kernel
    // depends on timing.
    if (row.close_target) continue;
    for (const Shape& shape : row.shapes)
      for (bool sf : {false, true})
        line(row.name + " " + shape.name + (sf ? " sendfile" : " sendmsg") + ": " +
             one(c, row.cfg, shape, sf));
  }
}

}  // namespace

const Row kSendMatrix = {"send_matrix", "send", {"msg_prog"}, false, send_matrix};

}  // namespace bpfrows
