// How a control command fails: an errno name the answer carries as its code,
// and a message. Thrown by the commands (control_commands, control_maps,
// map_text) and turned into an error answer by handle_request.
#pragma once

#include <stdexcept>
#include <string>

namespace sockshim::control {

struct ControlError : std::runtime_error {
  ControlError(std::string code, const std::string& message)
      : std::runtime_error(message), code(std::move(code)) {}
  std::string code;  // an errno name: EINVAL, EOPNOTSUPP, ...
};

}  // namespace sockshim::control
