// The maps part of the control protocol: dumping maps and sk_storage, and
// user-space map operations on a live process (`sockshim map`).
#pragma once

#include <nlohmann/json.hpp>

namespace sockshim::control {

nlohmann::json dump_maps();
// The domain's shared maps, every process's entries with their holders:
// {"key", "maps": [{"name", "type", "key_size", "max_entries", "count",
// "entries": [{"key", "cookie", "holders": [{"pid", "fd"}]}]}]}, null
// without a domain. A domain that cannot be read throws EUCLEAN (why).
nlohmann::json dump_domain_maps();
nlohmann::json dump_storage();

// args: {"op": "lookup"|"update"|"delete", "map": NAME, "key": TEXT,
// "fd": INT (update of a sockmap/sockhash), "value": TEXT (update of
// sk_storage), "flags": "BPF_ANY"|"BPF_NOEXIST"|"BPF_EXIST"}. Errors are thrown
// as ControlError with the kernel's errno name.
nlohmann::json map_op(const nlohmann::json& args);

}  // namespace sockshim::control
