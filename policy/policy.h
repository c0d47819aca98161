// A loaded policy: POLICY.md v1 validated and compiled. load_policy_text and
// load_policy_file check everything before anything takes effect and report
// every error found, each with its JSON pointer, line and column.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "policy/program.h"
#include "policy/spec.h"

namespace sockshim::policy {

struct Attachment {
  const Program* program = nullptr;
  uint32_t map = 0;  // index in Policy::maps
  AttachType type = AttachType::sk_msg_verdict;
};

// A program taken from a BPF object file ("object"): its maps are the
// object's, not the policy's, so the policy does not own it; the pointer
// holds what it runs with.
struct ObjectProgram {
  std::string name;  // the policy's name for it (the program's own may differ)
  std::shared_ptr<const Program> program;
};

struct Policy {
  std::string description;
  std::vector<MapSpec> maps;                       // in file order
  std::vector<std::unique_ptr<Program>> programs;  // in file order; addresses are stable
  std::vector<ObjectProgram> objects;              // in file order, not in `programs`
  std::vector<Attachment> attach;                  // in file order
  std::vector<const Program*> sockops;             // in the order they run

  // By the policy's name, in `programs` or `objects`.
  const Program* program(std::string_view name) const noexcept;
  // Index in maps, or -1.
  int map_index(std::string_view name) const noexcept;
  // The programs attached to maps[map] for one attach type, or nullptr.
  const Program* attached(uint32_t map, AttachType type) const noexcept;
};

const char* map_type_name(MapType t) noexcept;
const char* attach_type_name(AttachType t) noexcept;

struct LoadError {
  std::string pointer;  // JSON pointer of the offending value; "" for the whole file
  int line = 0;         // 1-based; 0 when not known
  int column = 0;       // 1-based, in bytes
  std::string message;  // what was expected

  // "SOURCE:LINE:COLUMN: POINTER: MESSAGE" (parts that are not known left out);
  // a file that cannot be read (line 0, no pointer) is named by its message,
  // so it prints as read_error's text alone.
  std::string format(std::string_view source) const;
};

struct LoadResult {
  std::unique_ptr<Policy> policy;  // set when errors is empty
  std::vector<LoadError> errors;   // in file order
  bool ok() const noexcept { return policy != nullptr; }
};

// A policy file is a regular file of at most this many bytes.
inline constexpr size_t kMaxPolicyBytes = 16 << 20;

// Reads the policy file path into *text. Returns "" or why it cannot:
// strerror's text ("Is a directory", "Permission denied", ...), "not a regular
// file" or "larger than 16 MiB". A fifo or device named by mistake is refused
// without blocking. Every entry point (the library, check, test-run, run,
// reload) reads policies through it and reports read_error's message.
std::string read_policy_file(const std::string& path, std::string* text);
// "cannot read policy PATH: WHY": the one message for a policy that cannot be read.
std::string read_error(std::string_view path, std::string_view why);

// base_dir: where relative "object" paths start ("" for the working directory).
LoadResult load_policy_text(std::string_view text, const std::string& base_dir = "");
// Reads path with read_policy_file; an unreadable file is one error, line 0
// and no pointer, whose message is read_error's. Relative "object" paths
// start in path's directory; object files are opened through the hook
// (policy/object_file.h), the only other I/O.
LoadResult load_policy_file(const std::string& path);

}  // namespace sockshim::policy
