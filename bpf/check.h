// The load-time check that stands where the kernel's verifier would: every
// instruction is a valid encoding, jumps and calls land on instructions inside
// their function, helpers are known and allowed for the program type, map
// references resolve. It does not track register types: the VM bounds-checks
// every access at run time instead.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "bpf/insn.h"
#include "bpf/program.h"

namespace sockshim::bpf {

// What an lddw with a map pseudo source loads.
struct MapRef {
  uint64_t value = 0;  // BPF_PSEUDO_MAP_FD: the map handle; MAP_VALUE: the value's address
  // MAP_VALUE: the memory the address points into, which the program may then use.
  uint64_t region_start = 0;
  uint64_t region_len = 0;
  bool writable = false;
};

// Resolves lddw src = pseudo (BPF_PSEUDO_MAP_FD, _MAP_VALUE, _MAP_IDX,
// _MAP_IDX_VALUE) with imm = fd or index and, for the value forms, the offset
// from the second slot's imm. Returns 0 or -errno (the load fails with it).
using MapResolver = std::function<int(uint8_t pseudo, int32_t fd, uint32_t off, MapRef* out)>;

struct LoadOptions {
  ProgType type = ProgType::sk_msg;
  const HelperTable* helpers = nullptr;  // a helper missing here is rejected at load
  MapResolver resolve_map;               // empty: map references are rejected
};

// Checks `insns` and decodes them into *out. Returns 0, or -EINVAL (or the
// resolver's error) with a one-line message in *log naming the instruction
// index, in the manner of the kernel's verifier log.
int load_program(InsnSpan insns, const LoadOptions& opts, LoadedProgram* out, std::string* log);

}  // namespace sockshim::bpf
