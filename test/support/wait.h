// Waiting on conditions instead of sleeping. Neither helper asserts: both may
// be called from a test's worker threads, which record what they return for
// the test's own thread to check (Catch2 asserts only there).
#pragma once

#include <functional>

namespace test_support {

// Polls pred every 2 ms for up to ms; true as soon as it holds.
bool eventually(const std::function<bool()>& pred, int ms = 3000);

// Waits up to ms until at least n threads of this process are blocked in one
// of the shim's waits (a blocking recv, a sender waiting for room, poll,
// select or epoll over psocks; core/sock/blocked_waits.h).
bool wait_blocked(int n = 1, int ms = 3000);

}  // namespace test_support
