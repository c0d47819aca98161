// Fusing the instruction runs compilers emit together (a context load and a
// compare-jump of it, a bounds check's mov-add-jgt, an lddw and a compare of
// it, `r0 = K; exit`) into one decoded operation, so the VM dispatches once
// for them. The operations are described in program.h.
#pragma once

#include <vector>

#include "bpf/program.h"

namespace sockshim::bpf {

// Rewrites the first slot of each fusable run in place. `code` is a checked
// program as load_program decodes it; every other slot keeps its decoding,
// so jumps into a run stay valid.
void fuse_sequences(std::vector<Decoded>& code);

}  // namespace sockshim::bpf
