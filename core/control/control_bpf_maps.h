// The maps a process made with bpf() (core/bpfsys/), for `sockshim dump`.
#pragma once

#include <nlohmann/json.hpp>

#include "core/control/socket_index.h"

namespace sockshim::control {

// One document per bpf() map, in the shape of dump_maps()'s, with
// "source": "bpf" and its id; sockhash keys are the key's bytes in hex (a
// bpf() map has no key layout to decode them with).
nlohmann::json dump_bpf_maps(const SocketIndex& sockets);

}  // namespace sockshim::control
