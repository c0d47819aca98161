// The process's side of its domain's sk_storage values (shared_storage.h):
// what an SK_STORAGE map of the policy asks of the domain. Every call takes
// the domain's lock once; reading a held value in place needs none.
#pragma once

#include <cstdint>

#include "core/domain/shared_storage.h"

namespace sockshim::domain {

// Whether the process has a domain to keep values in (attached, not failed
// closed). Without one, a map keeps its values to the process.
bool domain_storage_active() noexcept;
// The value of cookie in def, this process holding it from now on (see
// storage_hold). -ENODEV without a domain.
int domain_storage_hold(const StorageDef& def, uint64_t cookie, bool create,
                        ValueRef* out) noexcept;
// storage_write and storage_delete under the domain's lock.
int domain_storage_write(ValueRef v, const void* value, uint64_t flags) noexcept;
int domain_storage_delete(ValueRef v) noexcept;
// This process's last fd of cookie closed: it holds its values no more.
void domain_storage_closed(uint64_t cookie) noexcept;

}  // namespace sockshim::domain
