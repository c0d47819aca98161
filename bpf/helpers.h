// Helper ids (BPF_FUNC_* from <linux/bpf.h>), their names for the verifier
// log, and which ones a program of each type may call, as the kernel's
// *_func_proto functions in net/core/filter.c (plus the base set every
// networking type gets) allow them. The VM implements none of them: the
// caller's HelperTable supplies the functions.
#pragma once

#include <linux/bpf.h>

#include <cstdint>

#include "bpf/context.h"

namespace sockshim::bpf {

inline constexpr int kMaxHelperId = __BPF_FUNC_MAX_ID;

// "map_lookup_elem" for BPF_FUNC_map_lookup_elem; nullptr outside the table.
const char* helper_name(int32_t id);

// Whether the kernel lets a program of type `t` call helper `id`.
bool helper_allowed(ProgType t, int32_t id);

}  // namespace sockshim::bpf
