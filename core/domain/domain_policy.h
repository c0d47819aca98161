// The process's side of the policy a reload published in its domain
// (shared_policy.h), through its own domain; -ENODEV without one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/domain/shared_policy.h"

namespace sockshim::domain {

// The generation published, read without the lock after the first call.
int domain_policy_generation(uint64_t* gen) noexcept;
int domain_policy_publish(std::string_view path, std::string_view text, uint64_t* gen) noexcept;
int domain_policy_read(uint64_t* gen, std::string* path, std::string* text) noexcept;

}  // namespace sockshim::domain
