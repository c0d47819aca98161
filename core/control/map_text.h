// A map's keys and values as text, in the layout the policy gives them
// (POLICY.md's C API): dumps print them, `sockshim map` parses them. A text
// that does not fit the layout is a ControlError (EINVAL).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "policy/spec.h"

namespace sockshim::control {

// A sockhash key, field by field.
nlohmann::json decode_key(const policy::MapSpec& spec, const unsigned char* key);
// "field=value,field=value" in any order, every field of the layout once.
std::vector<unsigned char> encode_key(const policy::MapSpec& spec, const std::string& text);

// An sk_storage value, field by field (bytes[N] as hex).
nlohmann::json decode_value(const policy::MapSpec& spec, const unsigned char* value);
// "field=number,...": the fields not named are zero.
std::vector<unsigned char> encode_value(const policy::MapSpec& spec, const std::string& text);

}  // namespace sockshim::control
