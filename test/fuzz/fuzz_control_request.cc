// libFuzzer target for the control protocol: any request line gets exactly one
// JSON answer with "version" and "ok", and never crashes or hangs the process.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <nlohmann/json.hpp>

#include "core/control/control_commands.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string line(reinterpret_cast<const char*>(data), size);
  nlohmann::json answer =
      nlohmann::json::parse(sockshim::control::handle_request(line), nullptr, false);
  if (answer.is_discarded() || !answer.is_object() || answer.value("version", 0) != 1 ||
      !answer.contains("ok") || !answer["ok"].is_boolean())
    abort();
  return 0;
}
