// What the control socket answers: each command turns a request into a result
// document, or throws ControlError.
#pragma once

#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace sockshim::control {

inline constexpr int kProtocolVersion = 1;
inline constexpr size_t kMaxRequestBytes = 64 * 1024;

struct ControlError : std::runtime_error {
  ControlError(std::string code, const std::string& message)
      : std::runtime_error(message), code(std::move(code)) {}
  std::string code;  // an errno name: EINVAL, EOPNOTSUPP, ...
};

// Parses one request line and returns the response line (without the newline).
// Never throws: every failure becomes an error response.
std::string handle_request(const std::string& line) noexcept;

}  // namespace sockshim::control
