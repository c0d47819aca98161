// Programs a policy names in a compiled BPF object ("object" and "program"
// keys, docs/semantics.md). Opening and loading an ELF object is libbpf's
// work, and loading it runs bpf(), which core emulates: a layer above
// policy/. So the loader calls a hook the upper layer installs (core/bpfsys
// under the shim: open, load and return the programs; `sockshim check`:
// open and check names and types only).
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "policy/program.h"

namespace sockshim::policy {

// One program the policy takes from an object file.
struct ObjectProgramRef {
  std::string program;  // its name in the object (the C function's)
  ProgramType type;     // the policy's "type" for it
};

struct ObjectPrograms {
  std::string error;  // about the whole file ("" when it opened)
  // Per ref: "" or why that program is not usable. One program's error
  // leaves the file unloaded: the others then have neither error nor program.
  std::vector<std::string> errors;
  // Per ref, when its error is "": the program, holding what it runs with
  // (its object's maps) for as long as anyone holds it.
  std::vector<std::shared_ptr<const Program>> programs;
};

// Opens the object at path (absolute, or relative to the working directory)
// and gives the programs refs names, all from one load of the object, so
// they share its maps. Reports errors in the result, never throws.
using ObjectLoader = ObjectPrograms (*)(const std::string& path,
                                        std::span<const ObjectProgramRef> refs);

// The installed hook (null: this process cannot load objects, and a policy
// with "object" gets an error saying so).
void set_object_loader(ObjectLoader loader) noexcept;
ObjectLoader object_loader() noexcept;

}  // namespace sockshim::policy
