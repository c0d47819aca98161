// The loader's walk over a policy document, one file per section of POLICY.md:
// loader.cc (the document, typed reads, map references), loader_maps.cc,
// loader_programs.cc (programs, frames, rules), loader_conditions.cc,
// loader_actions.cc, loader_keys.cc (sockhash and sockmap keys) and
// loader_attach.cc (attach and sockops). Every problem is recorded and the walk
// goes on, so a user sees all of them. Internal to policy/.
#pragma once

#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "policy/json_pos.h"
#include "policy/object_file.h"
#include "policy/policy.h"
#include "policy/vocabulary.h"

namespace sockshim::policy {

using json = nlohmann::ordered_json;

// "expected one of \"a\", \"b\"".
std::string one_of(std::span<const std::string_view> names);
std::string one_of(std::initializer_list<std::string_view> names);
// "an object", "a string", ...: what a value is, for "expected X, found Y".
const char* type_word(const json& v);

class Loader {
 public:
  Loader(const JsonDoc& doc, std::vector<LoadError>& errors, std::string base_dir)
      : doc_(doc), errors_(errors), base_dir_(std::move(base_dir)) {}

  std::unique_ptr<Policy> load();

 private:
  using Names = std::span<const std::string_view>;
  // A literal of some type at a pointer, reporting its error there.
  using ReadValue = std::function<std::optional<uint64_t>(const json&, const std::string&)>;

  // ---- errors and typed reads (loader.cc) ----
  void error_at(uint32_t offset, const std::string& ptr, std::string message);
  void error(const std::string& ptr, std::string message);
  void error_key(const std::string& ptr, std::string message);
  static std::string at(const std::string& ptr, std::string_view token) {
    return json_pointer_append(ptr, token);
  }
  bool expect_object(const json& v, const std::string& ptr);
  bool expect_array(const json& v, const std::string& ptr);
  std::optional<std::string> get_string(const json& v, const std::string& ptr);
  // An unsigned integer in [lo, hi].
  std::optional<uint64_t> get_uint(const json& v, const std::string& ptr, uint64_t lo = 0,
                                   uint64_t hi = UINT64_MAX);
  std::optional<int64_t> get_int(const json& v, const std::string& ptr);
  // A signed or unsigned 64-bit integer, as its bits.
  std::optional<uint64_t> get_int_bits(const json& v, const std::string& ptr);
  std::optional<std::string> get_enum(const json& v, const std::string& ptr, Names names);
  std::optional<std::string> get_enum(const json& v, const std::string& ptr,
                                      std::initializer_list<std::string_view> names) {
    return get_enum(v, ptr, Names(names.begin(), names.size()));
  }
  // Reports keys of obj that are not in allowed; "description" is always allowed.
  bool check_keys(const json& obj, const std::string& ptr, Names allowed);
  bool check_keys(const json& obj, const std::string& ptr,
                  std::initializer_list<std::string_view> allowed) {
    return check_keys(obj, ptr, Names(allowed.begin(), allowed.size()));
  }
  bool require(const json& obj, const std::string& ptr, std::string_view key);
  static const json* member(const json& obj, std::string_view key);
  // Text or {"hex": "..."} as bytes.
  std::optional<std::string> get_bytes(const json& v, const std::string& ptr);
  // The map named by obj's "map", if it is one of types.
  std::optional<uint32_t> map_ref(const json& obj, const std::string& ptr,
                                  std::initializer_list<MapType> types);
  // The field of an sk_storage map's value named by v.
  const ValueField* storage_field(uint32_t map, const json& v, const std::string& ptr);
  // The message for a context field that cur_type_ lacks, or "".
  std::string unavailable(std::string_view field_name, CtxField f) const;

  // ---- maps (loader_maps.cc) ----
  void load_maps(const json& v, const std::string& ptr);
  void load_map(const std::string& name, const json& v, const std::string& ptr);
  void not_for(const json& v, const std::string& ptr, MapType t, std::string_view key,
               std::string_view why);
  void load_storage_map(const json& v, const std::string& ptr, MapSpec& spec, size_t errors_before);
  void load_storage_flags(const json& v, const std::string& ptr, MapSpec& spec,
                          size_t errors_before);
  void load_value_layout(const json& v, const std::string& ptr, MapSpec& spec);
  std::optional<ValueField> load_value_field(const std::string& name, const json& v,
                                             const std::string& ptr);
  void load_sock_map(const json& v, const std::string& ptr, MapSpec& spec);
  void load_max_entries(const json& v, const std::string& ptr, MapSpec& spec);
  void load_key_layout(const json& v, const std::string& ptr, MapSpec& spec);

  // ---- programs (loader_programs.cc) ----
  void load_programs(const json& v, const std::string& ptr);
  void load_program(const std::string& name, const json& v, const std::string& ptr);
  void load_program_body(const json& v, const std::string& ptr, CompiledProgram& out);
  void load_frame(const json& v, const std::string& ptr, FrameSpec& out);
  void load_length_prefix(const json& v, const std::string& ptr, FrameSpec& out);
  void load_rules(const json& v, const std::string& ptr, CompiledProgram& out);

  // ---- programs from BPF objects (loader_objects.cc) ----
  void load_object_program(const std::string& name, const json& v, const std::string& ptr);
  void load_objects();

  // ---- conditions (loader_conditions.cc) ----
  bool load_cond_object(const json& v, const std::string& ptr, std::vector<Cond>& out);
  bool load_cond(const std::string& key, const json& v, const std::string& ptr,
                 std::vector<Cond>& out);
  bool load_group(const std::string& key, const json& v, const std::string& ptr,
                  std::vector<Cond>& out);
  bool load_ctx_cond(const std::string& key, const json& v, const std::string& ptr,
                     std::vector<Cond>& out);
  bool load_field_cond(CtxField f, const json& v, const std::string& ptr, Cond& out);
  bool load_ip6_cond(const json& v, const std::string& ptr, Cond& out);
  std::optional<uint64_t> field_literal(CtxField f, const json& v, const std::string& ptr);
  std::optional<uint64_t> named_literal(std::span<const NamedValue> names, const json& v,
                                        const std::string& ptr);
  bool load_comparisons(const json& v, const std::string& ptr, bool object_only,
                        const ReadValue& value, std::vector<Compare>& out, bool is_signed = false);
  bool load_comparison(const std::string& k, const json& v, const std::string& ptr,
                       const ReadValue& value, std::vector<Compare>& out, bool is_signed);
  bool load_data_cond(const json& v, const std::string& ptr, std::vector<Cond>& out);
  bool load_data_ints(const json& v, const std::string& ptr, std::vector<Cond>& out, size_t& n);
  bool load_storage_cond(const json& v, const std::string& ptr, Cond& out);

  // ---- actions (loader_actions.cc) ----
  bool load_action(const json& v, const std::string& ptr, Action& out);
  bool load_action_body(const std::string& kind, const json& v, const std::string& ptr,
                        Action& out);
  void load_range(const ActionInfo& info, const json& v, const std::string& ptr, Action& out);
  void load_push(const json& v, const std::string& ptr, Action& out);
  void load_map_key(const ActionInfo& info, const json& v, const std::string& ptr, Action& out);
  void load_redirect_flags(const json& f, const std::string& ptr, Action& out);
  void load_storage_action(const json& v, const std::string& ptr, Action& out);
  std::optional<StorageWrite> load_storage_write(bool add, const ValueField& target, const json& v,
                                                 const std::string& ptr);
  std::optional<uint32_t> load_u32_member(const json& v, const std::string& ptr,
                                          std::string_view key);

  // ---- keys (loader_keys.cc) ----
  bool load_key(const json& v, const std::string& ptr, uint32_t map, KeySpec& out);
  bool load_sockmap_key(const json& v, const std::string& ptr, const MapSpec& m, KeySpec& out);
  bool load_tuple_key(bool peer, const std::string& ptr, const MapSpec& m, KeySpec& out);
  bool load_key_object(const json& v, const std::string& ptr, const MapSpec& m, KeySpec& out);
  bool load_key_part(KeyField kf, const json& v, const std::string& ptr, KeyPart& out);
  bool load_key_text(KeyField kf, const std::string& s, const std::string& ptr, KeyPart& out);

  // ---- attach and sockops (loader_attach.cc) ----
  void load_attach(const json& v, const std::string& ptr);
  void load_attachment(const json& a, const std::string& ptr);
  std::optional<ProgramType> attach_program(const json& a, const std::string& ptr,
                                            const Program*& prog);
  std::optional<uint32_t> attach_map(const json& a, const std::string& ptr);
  std::optional<AttachType> attach_type(const json& a, const std::string& ptr,
                                        std::optional<ProgramType> ptype);
  bool attach_conflict(const std::string& ptr, uint32_t map, AttachType type);
  void load_sockops(const json& v, const std::string& ptr);

  const JsonDoc& doc_;
  std::vector<LoadError>& errors_;
  std::unique_ptr<Policy> policy_ = std::make_unique<Policy>();
  // Maps whose definition had errors: references to them are not checked further.
  std::set<std::string> broken_maps_;
  std::map<std::string, ProgramType> program_types_;
  std::set<std::string> broken_programs_;
  ProgramType cur_type_ = ProgramType::sk_msg;  // of the program being loaded
  // "object" programs, loaded together per file once every program is read.
  struct PendingObject {
    std::string name, ptr, path, object;  // object: as written; path: resolved
    ObjectProgramRef ref;
  };
  std::vector<PendingObject> pending_objects_;
  const std::string base_dir_;
  bool needs_data_ = false;
};

}  // namespace sockshim::policy
