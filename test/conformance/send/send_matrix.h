// The test_sockmap send matrix (KERNEL-SEMANTICS.md §6.1), defined once for
// the suites that run it: send_conformance (the kernel against the same
// program as a JSON policy) and the bpf() rows (the kernel against the same
// object through the bytecode backend). A row is send_progs.bpf.c's
// configuration and the send shapes it runs with.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace send_matrix {

// send_progs.bpf.c's struct cfg.
struct Cfg {
  uint32_t apply = 0, cork = 0, pull_start = 0, pull_end = 0, push_start = 0, push_len = 0,
           pop_start = 0, pop_len = 0;
  uint32_t drop = 0, redirect = 0, ingress = 0;
};

// Each of `sends` calls sends iov_count pieces of iov_len bytes.
struct Shape {
  const char* name;
  size_t iov_len, iov_count, sends;
};

struct Row {
  std::string name;
  Cfg cfg;
  std::vector<Shape> shapes;
  // test_sockmap's "redirect wait send mem": the target's buffers shrunk to
  // 1024 bytes and the target closed before the sends.
  bool close_target = false;
};

std::vector<Row> rows();

}  // namespace send_matrix
