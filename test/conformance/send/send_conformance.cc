// The test_sockmap send matrix, run against the kernel and through the shim.
// Each row: a program configuration (pass, drop, redirect, apply, cork, pull,
// push, pop), a send shape and a send call (sendmsg or sendfile). Topology: c1
// (connected to p1) sends; c1 sits in the program's map; c2 (connected to p2)
// is the redirect target. Readers drain p1, p2 and c2. The row passes when
// both backends return the same send() results and the same bytes at every
// reader (lengths only where push inserts bytes the kernel leaves
// uninitialised). Prints PASS|FAIL <name> per row; exits 77 (skip) when the
// kernel refuses bpf() here, 1 when a row fails or the program does not load.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "../kernel_side.h"
#include "core/maps/loaded_policy.h"
#include "send_matrix.h"
#include "shim/sockshim.h"
#include "test/support/redirect.h"

namespace {

using send_matrix::Cfg;
using send_matrix::Shape;

struct Outcome {
  std::vector<ssize_t> sends;  // each send()'s result, -errno on failure
  std::string p1, p2, c2;      // bytes read at each reader
};

// Reads fd until `stop` is set and nothing came for quiet_ms.
void drain(int fd, std::string* out, const std::atomic<bool>* stop, int quiet_ms) {
  char buf[65536];
  for (;;) {
    pollfd pf{fd, POLLIN, 0};
    int r = poll(&pf, 1, quiet_ms);
    if (r <= 0) {
      if (stop->load()) return;
      continue;
    }
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) {
      if (n == 0 || stop->load()) return;
      continue;
    }
    out->append(buf, static_cast<size_t>(n));
  }
}

// Sockets of one run; inserts them through `insert` (kernel or shim maps).
// close_target: test_sockmap's "redirect wait send mem": the target's buffers
// forced to 1024 bytes and the target closed before the sends.
bool g_close_target = false;

template <typename Insert>
Outcome traffic(const Shape& shape, bool use_sendfile, int quiet_ms, Insert&& insert) {
  Outcome o;
  test_support::RedirectPairs pairs;
  pairs.connect();  // a failed step leaves -1: the sends fail and the row with them
  const int c1 = pairs.a.c, p1 = pairs.a.p, p2 = pairs.b.p;
  int& c2 = pairs.b.c;
  insert(c1, c2);
  if (g_close_target) {
    int small = 1024;
    setsockopt(c2, SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
    setsockopt(p2, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    close(c2);
    c2 = socket(AF_INET, SOCK_STREAM, 0);  // an idle stand-in for the reader
  }
  std::atomic<bool> stop{false};
  std::thread r1(drain, p1, &o.p1, &stop, quiet_ms), r2(drain, p2, &o.p2, &stop, quiet_ms),
      r3(drain, c2, &o.c2, &stop, quiet_ms);
  const size_t per = shape.iov_len * shape.iov_count;
  std::string data(per * shape.sends, 0);
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<char>(i % per);  // test_sockmap's k++ per send
  char path[] = "/tmp/sockshim-send-conf-XXXXXX";
  int file = -1;
  if (use_sendfile) {
    file = mkstemp(path);
    unlink(path);
    if (write(file, data.data(), data.size()) != static_cast<ssize_t>(data.size())) perror("write");
  }
  std::vector<iovec> iov(shape.iov_count);
  for (size_t s = 0; s < shape.sends; ++s) {
    ssize_t r;
    if (use_sendfile) {
      off_t off = static_cast<off_t>(s * per);
      r = sendfile(c1, file, &off, per);
    } else {
      for (size_t i = 0; i < shape.iov_count; ++i)
        iov[i] = {&data[s * per + i * shape.iov_len], shape.iov_len};
      msghdr m{};
      m.msg_iov = iov.data();
      m.msg_iovlen = iov.size();
      r = sendmsg(c1, &m, MSG_NOSIGNAL);
    }
    o.sends.push_back(r < 0 ? -errno : r);
  }
  stop = true;
  r1.join();
  r2.join();
  r3.join();
  if (file >= 0) close(file);
  return o;
}

struct Kernel {
  bpf_object* obj = nullptr;
  int txmap = -1, redir = -1, conf = -1, prog = -1;
  Kernel() = default;
  Kernel(const Kernel&) = delete;
  Kernel& operator=(const Kernel&) = delete;
  ~Kernel() { bpf_object__close(obj); }  // its maps and program go with it
  conformance::KernelOpen open(const char* path, std::string* why) {
    const conformance::KernelOpen status = conformance::open_bpf_object(path, &obj, why);
    if (status != conformance::KernelOpen::ok) return status;
    txmap = bpf_object__find_map_fd_by_name(obj, "txmap");
    redir = bpf_object__find_map_fd_by_name(obj, "redir");
    conf = bpf_object__find_map_fd_by_name(obj, "conf");
    prog = bpf_program__fd(bpf_object__find_program_by_name(obj, "msg_prog"));
    if (prog < 0 || bpf_prog_attach(prog, txmap, BPF_SK_MSG_VERDICT, 0) != 0) {
      *why = std::string("msg_prog of ") + path + " did not attach: " + strerror(errno);
      return conformance::KernelOpen::failed;
    }
    return conformance::KernelOpen::ok;
  }
  Outcome run(const Cfg& cfg, const Shape& shape, bool sf, int quiet_ms) {
    int zero = 0;
    bpf_map_update_elem(conf, &zero, &cfg, BPF_ANY);
    Outcome o = traffic(shape, sf, quiet_ms, [&](int c1, int c2) {
      bpf_map_update_elem(txmap, &zero, &c1, BPF_ANY);
      bpf_map_update_elem(redir, &zero, &c2, BPF_ANY);
    });
    bpf_map_delete_elem(txmap, &zero);
    bpf_map_delete_elem(redir, &zero);
    return o;
  }
};

std::string policy_json(const Cfg& c) {
  std::string a;
  auto add = [&](const std::string& s) { a += (a.empty() ? "" : ", ") + s; };
  if (c.apply) add("{\"apply_bytes\": " + std::to_string(c.apply) + "}");
  if (c.cork) add("{\"cork_bytes\": " + std::to_string(c.cork) + "}");
  if (c.pull_end)
    add("{\"pull_data\": {\"start\": " + std::to_string(c.pull_start) +
        ", \"end\": " + std::to_string(c.pull_end) + "}}");
  if (c.push_len)
    add("{\"push_data\": {\"start\": " + std::to_string(c.push_start) + ", \"bytes\": \"" +
        std::string(c.push_len, 'P') + "\"}}");
  if (c.pop_len)
    add("{\"pop_data\": {\"start\": " + std::to_string(c.pop_start) +
        ", \"len\": " + std::to_string(c.pop_len) + "}}");
  if (c.drop)
    add("\"drop\"");
  else if (c.redirect)
    add(std::string("{\"redirect\": {\"map\": \"redir\", \"key\": 0") +
        (c.ingress ? ", \"flags\": [\"BPF_F_INGRESS\"]" : "") + "}}");
  else
    add("\"pass\"");
  return R"({"version": 1, "maps": {"txmap": {"type": "sockmap", "max_entries": 2},
    "redir": {"type": "sockmap", "max_entries": 2}},
    "programs": {"msg_prog": {"type": "sk_msg", "rules": [{"do": [)" +
         a + R"(]}]}},
    "attach": [{"program": "msg_prog", "map": "txmap", "attach_type": "BPF_SK_MSG_VERDICT"}]})";
}

bool shim_load(const Cfg& c) {
  char path[] = "/tmp/sockshim-send-conf-policy-XXXXXX";
  int fd = mkstemp(path);
  std::string j = policy_json(c);
  bool ok = write(fd, j.data(), j.size()) == static_cast<ssize_t>(j.size());
  close(fd);
  std::vector<std::string> errors;
  ok = ok && sockshim::load_policy(path, &errors);
  unlink(path);
  for (const auto& e : errors) fprintf(stderr, "policy: %s\n", e.c_str());
  return ok;
}

Outcome shim_run(const Shape& shape, bool sf, int quiet_ms) {
  return traffic(shape, sf, quiet_ms, [&](int c1, int c2) {
    uint32_t zero = 0;
    uint64_t v1 = static_cast<uint64_t>(c1), v2 = static_cast<uint64_t>(c2);
    sockshim_map_update_elem("txmap", &zero, &v1, 0);
    sockshim_map_update_elem("redir", &zero, &v2, 0);
  });
}

std::string summary(const Outcome& o) {
  std::string s = "sends[";
  for (size_t i = 0; i < o.sends.size() && i < 6; ++i) s += std::to_string(o.sends[i]) + " ";
  if (o.sends.size() > 6) s += "... " + std::to_string(o.sends.back());
  return s + "] p1=" + std::to_string(o.p1.size()) + " p2=" + std::to_string(o.p2.size()) +
         " c2=" + std::to_string(o.c2.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: send_conformance send_progs.bpf.o [filter]\n");
    return 2;
  }
  const char* filter = argc > 2 ? argv[2] : nullptr;
  Kernel k;
  std::string why;
  const conformance::KernelOpen opened = k.open(argv[1], &why);
  if (opened != conformance::KernelOpen::ok) return conformance::exit_without_kernel(opened, why);
  int pass = 0, fail = 0;
  for (const send_matrix::Row& row : send_matrix::rows()) {
    for (const Shape& shape : row.shapes) {
      for (bool sf : {false, true}) {
        std::string name = row.name + " " + shape.name + (sf ? " sendfile" : " sendmsg");
        if (filter && name.find(filter) == std::string::npos) continue;
        const int quiet = 250;
        g_close_target = row.close_target;
        Outcome ko = k.run(row.cfg, shape, sf, quiet);
        if (!shim_load(row.cfg)) {
          printf("FAIL %s: policy did not load\n", name.c_str());
          ++fail;
          continue;
        }
        Outcome so = shim_run(shape, sf, quiet);
        bool lengths_only = row.cfg.push_len != 0;
        bool same = ko.sends == so.sends && ko.p1.size() == so.p1.size() &&
                    ko.p2.size() == so.p2.size() && ko.c2.size() == so.c2.size() &&
                    (lengths_only || (ko.p1 == so.p1 && ko.p2 == so.p2 && ko.c2 == so.c2));
        printf("%s %s", same ? "PASS" : "FAIL", name.c_str());
        if (same)
          printf(" (%s)", summary(ko).c_str());
        else
          printf("\n  kernel: %s\n  shim:   %s", summary(ko).c_str(), summary(so).c_str());
        printf("\n");
        fflush(stdout);
        (same ? pass : fail)++;
      }
    }
  }
  printf("%d passed, %d failed\n", pass, fail);
  return fail ? 1 : 0;
}
