// Aligned text tables for the inspection commands.
#pragma once

#include <string>
#include <vector>

namespace sockshim::tools {

class Table {
 public:
  explicit Table(std::vector<std::string> header) { rows_.push_back(std::move(header)); }
  void add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }
  // Columns separated by two spaces, each as wide as its widest cell; the last
  // column is not padded.
  std::string render(const std::string& indent = "") const;

 private:
  std::vector<std::vector<std::string>> rows_;
};

std::string format_duration(long long seconds);

// One line of at most max characters: control characters become spaces, and a
// cut is marked with "...".
std::string one_line(const std::string& text, size_t max);

}  // namespace sockshim::tools
