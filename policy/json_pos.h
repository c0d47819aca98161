// A JSON reader that remembers where each value is: nlohmann/json keeps no
// positions, and a load error must name the line and column of what it blames.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace sockshim::policy {

struct JsonPos {
  uint32_t key = 0;    // byte offset of the member's key (= value for array items, root)
  uint32_t value = 0;  // byte offset of the value's first character
};

struct LineCol {
  int line = 0;    // 1-based; 0 when unknown
  int column = 0;  // 1-based, in bytes
};

// A problem found while reading, at a byte offset, with the JSON pointer of the
// value it concerns ("" for syntax errors).
struct JsonIssue {
  std::string pointer;
  uint32_t offset = 0;
  std::string message;
};

class JsonDoc {
 public:
  // Parses RFC 8259 JSON. A syntax error stops the parse (one issue, no value);
  // a duplicate object key is reported and the first occurrence kept.
  static JsonDoc parse(std::string_view text);

  bool ok() const noexcept { return value_.has_value(); }
  const nlohmann::ordered_json& value() const { return *value_; }
  const std::vector<JsonIssue>& issues() const noexcept { return issues_; }

  // Position of the value at a JSON pointer, or of its nearest recorded ancestor.
  JsonPos pos(const std::string& pointer) const;
  LineCol line_col(uint32_t offset) const;

 private:
  std::optional<nlohmann::ordered_json> value_;
  std::vector<JsonIssue> issues_;
  std::unordered_map<std::string, JsonPos> pos_;
  std::vector<uint32_t> line_starts_;
  friend class JsonReader;
};

// Appends one reference token to a JSON pointer, escaping '~' and '/'.
std::string json_pointer_append(const std::string& pointer, std::string_view token);

// Quotes text for a message: "text" with JSON escapes, invalid UTF-8 replaced.
std::string quote(std::string_view text);

}  // namespace sockshim::policy
