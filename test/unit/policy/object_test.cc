// The "object" key: what the loader reads, where relative paths start, and
// how the hook's answers become programs and errors (the hook itself, libbpf
// and the shim's bpf(), is tested by integration: policy programs from a BPF
// object).
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "policy/compiled.h"
#include "policy/object_file.h"
#include "policy/policy.h"

using namespace sockshim::policy;

namespace {

std::vector<std::string> g_paths;  // what the fake hook was asked, in order

// Knows one program, "route", an sk_msg program.
ObjectPrograms fake_loader(const std::string& path, std::span<const ObjectProgramRef> refs) {
  g_paths.push_back(path);
  ObjectPrograms out;
  if (path.find("missing") != std::string::npos) {
    out.error = "cannot open " + path;
    return out;
  }
  out.errors.resize(refs.size());
  out.programs.resize(refs.size());
  for (size_t i = 0; i < refs.size(); ++i) {
    if (refs[i].program != "route" || refs[i].type != ProgramType::sk_msg)
      out.errors[i] = "no " + refs[i].program;
    else
      out.programs[i] = std::make_shared<const Program>("route", refs[i].type,
                                                        std::make_unique<CompiledProgram>());
  }
  return out;
}

std::string policy_with(const std::string& programs) {
  return R"({"version": 1, "maps": {"m": {"type": "sockmap", "max_entries": 2}},
             "programs": {)" +
         programs +
         R"(}, "attach": [{"program": "p", "map": "m", "attach_type": "BPF_SK_MSG_VERDICT"}]})";
}

// Restores "no hook" whatever the test did.
struct Hook {
  explicit Hook(ObjectLoader l) {
    g_paths.clear();
    set_object_loader(l);
  }
  ~Hook() { set_object_loader(nullptr); }
};

}  // namespace

TEST_CASE("without a hook, an object program is an error at its object key", "[policy][object]") {
  Hook h(nullptr);
  LoadResult r = load_policy_text(
      policy_with(R"("p": {"type": "sk_msg", "object": "x.bpf.o", "program": "route"})"));
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].pointer == "/programs/p/object");
  CHECK(r.errors[0].message.find("objects are loaded under the shim") != std::string::npos);
}

TEST_CASE("an object program takes only type, object and program", "[policy][object]") {
  Hook h(fake_loader);
  LoadResult r = load_policy_text(policy_with(
      R"("p": {"type": "sk_msg", "object": "x.bpf.o", "program": "route", "rules": []})"));
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].pointer == "/programs/p/rules");
  r = load_policy_text(policy_with(R"("p": {"type": "sk_msg", "program": "route"})"));
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].message == "missing required key \"object\"");
  r = load_policy_text(policy_with(R"("p": {"type": "sk_msg", "object": "", "program": "route"})"));
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].pointer == "/programs/p/object");
  CHECK(g_paths.empty());  // nothing opened for a broken entry
}

TEST_CASE("object programs attach, one load per file, relative to the policy", "[policy][object]") {
  Hook h(fake_loader);
  const auto dir = std::filesystem::temp_directory_path() / "sockshim-object-test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "p.json").string();
  std::ofstream(path) << policy_with(
      R"("p": {"type": "sk_msg", "object": "progs.bpf.o", "program": "route"},
         "q": {"type": "sk_msg", "object": "/abs/other.bpf.o", "program": "route"})");
  LoadResult r = load_policy_file(path);
  std::filesystem::remove_all(dir);
  REQUIRE(r.errors.empty());
  CHECK(g_paths == std::vector<std::string>{"/abs/other.bpf.o", dir.string() + "/progs.bpf.o"});
  REQUIRE(r.policy->objects.size() == 2);
  CHECK(r.policy->objects[0].name == "p");
  CHECK(r.policy->programs.empty());
  const Program* p = r.policy->program("p");
  REQUIRE(p != nullptr);
  REQUIRE(r.policy->attach.size() == 1);
  CHECK(r.policy->attach[0].program == p);
}

TEST_CASE("the hook's errors land at object or program", "[policy][object]") {
  Hook h(fake_loader);
  LoadResult r = load_policy_text(
      policy_with(R"("p": {"type": "sk_msg", "object": "missing.bpf.o", "program": "route"})"));
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].pointer == "/programs/p/object");
  CHECK(r.errors[0].message == "cannot open missing.bpf.o");
  r = load_policy_text(
      policy_with(R"("p": {"type": "sk_msg", "object": "x.bpf.o", "program": "nope"})"));
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].pointer == "/programs/p/program");
  CHECK(r.errors[0].message == "no nope");
}
