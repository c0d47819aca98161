// The map parts of the control protocol: dumping maps, sk_storage, psocks and
// program counters, and user-space map operations on a live process (`sockshim
// map`).
#pragma once

#include <nlohmann/json.hpp>

namespace sockshim::control {

nlohmann::json dump_maps();
nlohmann::json dump_storage();
// Each psock: its socket, programs, links, ingress queue depth and byte
// counters (tx, rx, total).
nlohmann::json dump_psocks();
// The current policy's verdict programs with their counters per rule.
nlohmann::json dump_programs();

// args: {"op": "lookup"|"update"|"delete", "map": NAME, "key": TEXT,
// "fd": INT (update of a sockmap/sockhash), "value": TEXT (update of
// sk_storage), "flags": "BPF_ANY"|"BPF_NOEXIST"|"BPF_EXIST"}. Errors are thrown
// as ControlError with the kernel's errno name.
nlohmann::json map_op(const nlohmann::json& args);

}  // namespace sockshim::control
