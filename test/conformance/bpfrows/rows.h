// The rows: what each loads, attaches and sends. A row runs against whatever
// bpf() the process has: the kernel's as root, the shim's as an ordinary user.
#pragma once

#include <string>
#include <vector>

struct bpf_object;

namespace bpfrows {

struct Ctx {
  bpf_object* obj = nullptr;
  int cgroup = -1;  // the cgroup sockops rows attach to, or -1
};

struct Row {
  const char* name;
  const char* object;  // the .bpf.o it needs: "msg", "skb", "sockops", "send" or "recv"
  std::vector<const char*> programs;  // the programs it loads (the others are not)
  bool cgroup;                        // attaches to a cgroup
  void (*run)(Ctx&);
};

const std::vector<Row>& rows();

// The test_sockmap send matrix through the bytecode backend (matrix.cc).
extern const Row kSendMatrix;
// Receive-path scenarios of test/conformance/recv the same way (recv_matrix.cc).
extern const Row kRecvMatrix;

}  // namespace bpfrows
