// The two sides a row runs on: the kernel's sockmap (recv_progs.bpf.o through
// libbpf) and the shim (the same programs as a JSON policy, in this process).
#pragma once

#include <string>

#include "recv_rows.h"
#include "test/conformance/kernel_side.h"

struct bpf_object;

namespace recv_conf {

class KernelSide {
 public:
  KernelSide() = default;
  KernelSide(const KernelSide&) = delete;
  KernelSide& operator=(const KernelSide&) = delete;
  ~KernelSide();
  // See open_bpf_object: refused skips the suite, failed fails it.
  conformance::KernelOpen open(const char* object_path, std::string* why);
  Outcome run(const Row& row);

 private:
  bool attach(const Progs& p);

  bpf_object* obj_ = nullptr;
  int rx_ = -1, redir_ = -1, conf_ = -1;
  int parser_ = -1, stream_verdict_ = -1, skb_verdict_ = -1;
};

// The row's programs as a policy (maps rx and redir, programs on rx).
std::string policy_json(const Progs& p);

// Loads the row's policy, runs its traffic (inserting through the C API) and
// unloads the policy. False, with the loader's errors, when it does not load.
bool shim_run(const Row& row, Outcome* out, std::string* errors);

}  // namespace recv_conf
