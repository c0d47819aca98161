// Programs taken from compiled BPF objects: `{"type": T, "object": FILE,
// "program": NAME}`. The keys are read here; the file is opened (and, under
// the shim, loaded) through the object hook, once per file after the whole
// "programs" section is read, so programs of one file share its maps.
#include <map>

#include "policy/loader.h"

namespace sockshim::policy {

void Loader::load_object_program(const std::string& name, const json& v, const std::string& ptr) {
  const size_t errors_before = errors_.size();
  check_keys(v, ptr, {"type", "object", "program"});
  std::optional<std::string> object, program;
  if (require(v, ptr, "object")) object = get_string(v["object"], at(ptr, "object"));
  if (require(v, ptr, "program")) program = get_string(v["program"], at(ptr, "program"));
  if (object && object->empty()) error(at(ptr, "object"), "must not be empty");
  if (program && program->empty()) error(at(ptr, "program"), "must not be empty");
  if (errors_.size() != errors_before || name.empty()) {
    broken_programs_.insert(name);
    return;
  }
  const std::string path = (*object)[0] == '/' ? *object : base_dir_ + *object;
  pending_objects_.push_back({name, ptr, path, *object, {*program, cur_type_}});
}

void Loader::load_objects() {
  if (pending_objects_.empty()) return;
  const ObjectLoader loader = object_loader();
  // One load per file, its programs in file order.
  std::map<std::string, std::vector<const PendingObject*>> by_path;
  for (const PendingObject& p : pending_objects_) by_path[p.path].push_back(&p);
  std::map<const PendingObject*, std::shared_ptr<const Program>> loaded;
  for (const auto& [path, pending] : by_path) {
    if (!loader) {
      for (const PendingObject* p : pending) {
        error(at(p->ptr, "object"),
              "BPF object " + quote(p->object) +
                  ": objects are loaded under the shim and checked by sockshim check, not here");
        broken_programs_.insert(p->name);
      }
      continue;
    }
    std::vector<ObjectProgramRef> refs;
    for (const PendingObject* p : pending) refs.push_back(p->ref);
    ObjectPrograms got = loader(path, refs);
    for (size_t i = 0; i < pending.size(); ++i) {
      const PendingObject& p = *pending[i];
      if (!got.error.empty()) {
        error(at(p.ptr, "object"), got.error);
      } else if (i < got.errors.size() && !got.errors[i].empty()) {
        error(at(p.ptr, "program"), got.errors[i]);
      } else if (i < got.programs.size() && got.programs[i]) {
        loaded[&p] = std::move(got.programs[i]);
        continue;
      }
      // Not loaded because another program of the file has an error.
      broken_programs_.insert(p.name);
    }
  }
  for (const PendingObject& p : pending_objects_)  // in file order, as `programs`
    if (auto it = loaded.find(&p); it != loaded.end())
      policy_->objects.push_back({p.name, std::move(it->second)});
}

}  // namespace sockshim::policy
