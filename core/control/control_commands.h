// What the control socket answers: each command turns a request into a result
// document, or throws ControlError.
#pragma once

#include <string>

#include "core/control/control_error.h"

namespace sockshim::control {

// Parses one request line and returns the response line (without the newline).
// Never throws: every failure becomes an error response.
std::string handle_request(const std::string& line) noexcept;

}  // namespace sockshim::control
