// The object loader under the shim (policy/object_file.h): a policy's
// "object" programs are loaded as a libbpf loader would load them, through
// the process's own bpf() emulation, so each becomes a bpf() program whose
// maps are its object's (bpf_prog_cmds.cc: its LoadedPolicy numbers them).
#include <errno.h>

#include <cstring>

#include "core/bpfsys/bpf_objects.h"
#include "core/bpfsys/sys_bpf.h"
#include "core/maps/loaded_policy.h"
#include "policy/object_elf.h"

namespace sockshim::bpfsys {

namespace {

policy::ObjectPrograms load_object(const std::string& path,
                                   std::span<const policy::ObjectProgramRef> refs) {
  policy::ObjectPrograms out;
  try {
    policy::BpfObjectFile file;
    if (out.error = file.open(path); !out.error.empty()) return out;
    out.errors = file.select(refs);
    for (const std::string& e : out.errors)
      if (!e.empty()) return out;
    if (out.error = file.load(); !out.error.empty()) return out;
    out.programs.resize(refs.size());
    for (size_t i = 0; i < refs.size(); ++i) {
      std::shared_ptr<ProgObject> prog;
      if (int r = prog_at(file.program_fd(i), &prog); r || !prog->program) {
        out.errors[i] = "program \"" + refs[i].program + "\" of \"" + path +
                        "\" did not load as a bpf() program: " + strerror(r ? -r : EINVAL);
        continue;
      }
      // Its maps are its own policy's: policy_of must find that one.
      keep_program_policy(prog->owner);
      out.programs[i] = std::shared_ptr<const policy::Program>(prog, prog->program);
    }
    // The file's fds close here (bpf_object__close); the programs and, through
    // them, the object's maps stay while the policy holds them.
  } catch (const std::bad_alloc&) {
    out.error = "BPF object \"" + path + "\": out of memory";
  }
  return out;
}

}  // namespace

void install_object_loader() noexcept {
  policy::set_object_loader(load_object);
}

}  // namespace sockshim::bpfsys
