// sockshim check POLICY [--json]: validate a policy file and report every error.
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>

#include "policy/compiled.h"
#include "policy/object_elf.h"
#include "policy/policy.h"
#include "tools/commands.h"
#include "tools/policy_input.h"

namespace sockshim::tools {
namespace {

constexpr const char kCheckUsage[] =
    "usage: sockshim check POLICY [--json]\n"
    "\n"
    "Loads POLICY (a file, or - for standard input) as `sockshim run` would and\n"
    "validates all of it: keys, types, names, and every refusal the kernel would make\n"
    "(attach type vs program type, BPF_SK_SKB_STREAM_VERDICT with BPF_SK_SKB_VERDICT on\n"
    "one map, sk_storage without BPF_F_NO_PREALLOC or with max_entries, max_entries 0,\n"
    "value_size not 4 or 8, unknown key fields, ...). Nothing runs.\n"
    "A program taken from a BPF object (\"object\", \"program\") is checked by opening\n"
    "the object: the file, the program's name and its type (its section). Its\n"
    "bytecode is checked when the shim loads the policy.\n"
    "\n"
    "  --json      one JSON object on standard output instead of text\n"
    "  -h, --help  this text\n"
    "\n"
    "output: on success one line on standard output,\n"
    "  policy.json: ok: 2 maps, 3 programs, 2 attachments, 1 sockops program\n"
    "and otherwise every error on standard error, one a line, in file order,\n"
    "  policy.json:12:5: /maps/m/type: expected one of \"sockmap\", \"sockhash\", \"sk_storage\"\n"
    "followed by a count (`policy.json: 3 errors`). Each names the JSON pointer of the\n"
    "offending value, its line and column, and what was expected.\n"
    "With --json: {\"file\", \"ok\": true, \"maps\", \"programs\", \"attachments\", \"sockops\"}\n"
    "or {\"file\", \"ok\": false, \"errors\": [{\"pointer\", \"line\", \"column\", "
    "\"message\"}]}.\n"
    "\n"
    "exit status: 0 valid, 1 invalid or unreadable, 2 usage error.\n";

// The "object" hook of check: open and check, load nothing. The programs it
// gives stand for the object's in the policy's own checks (attach roles);
// they have no rules and never run.
policy::ObjectPrograms check_object(const std::string& path,
                                    std::span<const policy::ObjectProgramRef> refs) {
  policy::ObjectPrograms out;
  policy::BpfObjectFile file;
  if (out.error = file.open(path); !out.error.empty()) return out;
  out.errors = file.select(refs);
  out.programs.resize(refs.size());
  for (size_t i = 0; i < refs.size(); ++i)
    if (out.errors[i].empty())
      out.programs[i] = std::make_shared<const policy::Program>(
          refs[i].program, refs[i].type, std::make_unique<policy::CompiledProgram>());
  return out;
}

std::string count(size_t n, const char* noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

}  // namespace

int check_main(int argc, char** argv) {
  const char* path = nullptr;
  bool json_out = false;
  for (int i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
      fputs(kCheckUsage, stdout);
      return 0;
    }
    if (strcmp(argv[i], "--json") == 0) {
      json_out = true;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      fprintf(stderr, "sockshim check: unknown option '%s' (see sockshim check --help)\n", argv[i]);
      return kExitUsage;
    } else if (path) {
      fprintf(stderr, "sockshim check: one policy at a time (see sockshim check --help)\n");
      return kExitUsage;
    } else {
      path = argv[i];
    }
  }
  if (!path) {
    fputs(kCheckUsage, stderr);
    return kExitUsage;
  }
  policy::set_object_loader(check_object);
  const std::string name = policy_display_name(path);
  const policy::LoadResult r = load_policy_arg(path);
  if (json_out) {
    nlohmann::ordered_json j;
    j["file"] = name;
    j["ok"] = r.ok();
    if (r.ok()) {
      j["maps"] = r.policy->maps.size();
      j["programs"] = r.policy->programs.size() + r.policy->objects.size();
      j["attachments"] = r.policy->attach.size();
      j["sockops"] = r.policy->sockops.size();
    } else {
      j["errors"] = nlohmann::ordered_json::array();
      for (const policy::LoadError& e : r.errors)
        j["errors"].push_back({{"pointer", e.pointer},
                               {"line", e.line},
                               {"column", e.column},
                               {"message", e.message}});
    }
    std::cout << j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
    return r.ok() ? 0 : 1;
  }
  if (!r.ok()) {
    for (const policy::LoadError& e : r.errors) std::cerr << e.format(name) << "\n";
    std::cerr << name << ": " << count(r.errors.size(), "error") << "\n";
    return 1;
  }
  const policy::Policy& p = *r.policy;
  std::cout << name << ": ok: " << count(p.maps.size(), "map") << ", "
            << count(p.programs.size() + p.objects.size(), "program") << ", "
            << count(p.attach.size(), "attachment") << ", "
            << count(p.sockops.size(), "sockops program") << "\n";
  return 0;
}

}  // namespace sockshim::tools
