// A compiled BPF object file opened with libbpf, for a policy's "object"
// programs (policy/object_file.h). libbpf is loaded with dlopen when a
// policy first names an object, so processes whose policy names none never
// map it. Under the shim, libbpf's bpf() calls reach the emulation through
// the syscall() hook like any loader's. Used by the shim's object loader
// (core/bpfsys/bpf_object_load.cc) and by `sockshim check`, which opens and
// checks without loading.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "policy/object_file.h"

struct bpf_object;
struct bpf_program;

namespace sockshim::policy {

class BpfObjectFile {
 public:
  BpfObjectFile() = default;
  ~BpfObjectFile();
  BpfObjectFile(const BpfObjectFile&) = delete;
  BpfObjectFile& operator=(const BpfObjectFile&) = delete;

  // Opens path (parses the ELF; no bpf() call): "" or why not, naming the file.
  std::string open(const std::string& path);
  // Finds each ref's program and checks its type against the ref's; only
  // these programs will load. Returns one message per ref, "" when it fits.
  std::vector<std::string> select(std::span<const ObjectProgramRef> refs);
  // Loads the object: maps created, relocations applied, the selected
  // programs loaded, through bpf(). "" or why not, naming the file.
  std::string load();
  // The fd of the i-th selected program once loaded (bpf_program__fd).
  int program_fd(size_t i) const;

 private:
  std::string path_;
  bpf_object* obj_ = nullptr;
  std::vector<bpf_program*> selected_;
};

}  // namespace sockshim::policy
