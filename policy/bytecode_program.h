// Programs of eBPF bytecode (issue 14): what `clang -target bpf` compiles for
// sockmap, checked by bpf::load_program and run by the bpf::Vm interpreter
// behind the same policy::Program interface as rules, so core attaches, runs,
// counts, dumps and reloads them the same way.
#pragma once

#include <memory>
#include <string>

#include "bpf/check.h"
#include "policy/program.h"

namespace sockshim::policy {

// Loads insns as a program of `type` named `name`. The resolver answers the
// program's lddw map references: for BPF_PSEUDO_MAP_FD / BPF_PSEUDO_MAP_IDX it
// sets MapRef::value to the map's index as the Helpers the program runs with
// number maps (Policy::maps, LoadedPolicy::map_by_index); for the value forms
// (global data) the address and region, as bpf/check.h says. Returns 0 with
// *out set, or -EINVAL (or the resolver's -errno) with the checker's one-line
// message ("insn N: ...") in *log.
int load_bytecode_program(std::string name, ProgramType type, bpf::InsnSpan insns,
                          const bpf::MapResolver& resolve, std::unique_ptr<Program>* out,
                          std::string* log);

// The eBPF program type a policy program type runs as.
bpf::ProgType bpf_prog_type(ProgramType t) noexcept;

}  // namespace sockshim::policy
