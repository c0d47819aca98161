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
#include <functional>
#include <string>
#include <vector>

#include "rows.h"
#include "test/support/loopback.h"
#include "transcript.h"

namespace bpfrows {
namespace {

// send_progs.bpf.c's struct cfg.
struct Cfg {
  uint32_t apply = 0, cork = 0, pull_start = 0, pull_end = 0, push_start = 0, push_len = 0,
           pop_start = 0, pop_len = 0;
  uint32_t drop = 0, redirect = 0, ingress = 0;
};

struct Shape {
  const char* name;
  size_t iov_len, iov_count, sends;
};

const std::vector<Shape> kOne = {
    {"1x1", 1, 1, 1}, {"1x1024iov", 1, 1024, 1}, {"1024x1", 1, 1, 1024}};
const std::vector<Shape> kMany = {{"3Bx512", 3, 1, 512}, {"5Bx100", 5, 1, 100}};
const std::vector<Shape> kLarge = {{"8192x32iov_x2", 8192, 32, 2}};

std::vector<Shape> join(std::initializer_list<const std::vector<Shape>*> parts) {
  std::vector<Shape> all;
  for (auto* p : parts) all.insert(all.end(), p->begin(), p->end());
  return all;
}

struct MatrixRow {
  const char* name;
  std::function<void(Cfg&)> set;
  std::vector<Shape> shapes;
};

// The rows of send_conformance.cc but its "redirect wait send mem" (a
// closed target whose outcome depends on timing in the kernel).
std::vector<MatrixRow> matrix() {
  const auto all = join({&kOne, &kMany, &kLarge}), one_many = join({&kOne, &kMany});
  return {
      {"pass", [](Cfg&) {}, all},
      {"drop", [](Cfg& c) { c.drop = 1; }, all},
      {"redirect", [](Cfg& c) { c.redirect = 1; }, all},
      {"ingress redirect", [](Cfg& c) { c.redirect = c.ingress = 1; }, all},
      {"apply 1", [](Cfg& c) { c.apply = 1; }, kOne},
      {"apply 1 redirect", [](Cfg& c) { c.apply = 1, c.redirect = 1; }, kOne},
      {"apply 1024", [](Cfg& c) { c.apply = 1024; }, kLarge},
      {"apply 1024 redirect", [](Cfg& c) { c.apply = 1024, c.redirect = 1; }, kLarge},
      {"cork 1", [](Cfg& c) { c.cork = 1; }, all},
      {"apply 1 + cork 1", [](Cfg& c) { c.apply = 1, c.cork = 1; }, one_many},
      {"cork 512", [](Cfg& c) { c.cork = 512; }, kMany},
      {"cork 4097 (hanging)", [](Cfg& c) { c.cork = 4097; }, one_many},
      {"cork 4097 redirect (hanging)", [](Cfg& c) { c.cork = 4097, c.redirect = 1; }, one_many},
      {"push 1,1", [](Cfg& c) { c.push_start = 1, c.push_len = 1; }, all},
      {"push 4096,4096", [](Cfg& c) { c.push_start = 4096, c.push_len = 4096; }, kLarge},
      {"push 1,2 redirect", [](Cfg& c) { c.push_start = 1, c.push_len = 2, c.redirect = 1; }, all},
      {"pull 1..2", [](Cfg& c) { c.pull_start = 1, c.pull_end = 2; }, all},
      {"pull 4096..9182", [](Cfg& c) { c.pull_start = 4096, c.pull_end = 9182; }, kLarge},
      {"pull 1..2 redirect", [](Cfg& c) { c.pull_start = 1, c.pull_end = 2, c.redirect = 1; }, all},
      {"pop 1,2", [](Cfg& c) { c.pop_start = 1, c.pop_len = 2; }, kMany},
      {"pop 4096,4096", [](Cfg& c) { c.pop_start = 4096, c.pop_len = 4096; }, kLarge},
      {"pop 1,2 redirect", [](Cfg& c) { c.pop_start = 1, c.pop_len = 2, c.redirect = 1; }, kMany},
      {"pop 1,2 + cork 512", [](Cfg& c) { c.pop_start = 1, c.pop_len = 2, c.cork = 512; }, kMany},
      {"push 1,2 + cork 512", [](Cfg& c) { c.push_start = 1, c.push_len = 2, c.cork = 512; },
       kMany},
      {"pull 1..2 + cork 512", [](Cfg& c) { c.pull_start = 1, c.pull_end = 2, c.cork = 512; },
       kMany},
      {"pull 1..2 + cork 512 redirect",
       [](Cfg& c) { c.pull_start = 1, c.pull_end = 2, c.cork = 512, c.redirect = 1; }, kMany},
      {"pop 1,2 + cork 4 redirect",
       [](Cfg& c) { c.pop_start = 1, c.pop_len = 2, c.cork = 4, c.redirect = 1; }, kMany},
      {"apply 1 ingress redirect", [](Cfg& c) { c.apply = 1, c.redirect = c.ingress = 1; }, kOne},
      {"cork 512 ingress redirect", [](Cfg& c) { c.cork = 512, c.redirect = c.ingress = 1; },
       kMany},
      {"push 1,10 + pop 5,4",
       [](Cfg& c) { c.push_start = 1, c.push_len = 10, c.pop_start = 5, c.pop_len = 4; }, kLarge},
  };
}

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
  for (const MatrixRow& row : matrix()) {
    Cfg cfg;
    row.set(cfg);
    for (const Shape& shape : row.shapes)
      for (bool sf : {false, true})
        line(std::string(row.name) + " " + shape.name + (sf ? " sendfile" : " sendmsg") + ": " +
             one(c, cfg, shape, sf));
  }
}

}  // namespace

const Row kSendMatrix = {"send_matrix", "send", {"msg_prog"}, false, send_matrix};

}  // namespace bpfrows
