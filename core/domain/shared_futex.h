// Waiting on a 32-bit word in memory shared between processes: FUTEX_WAIT and
// FUTEX_WAKE without FUTEX_PRIVATE_FLAG (the kernel keys a shared futex by
// the page, so every process mapping the file wakes every other).
#pragma once

#include <time.h>

#include <atomic>
#include <cstdint>

namespace sockshim::domain {

// Sleeps while *word == expected, until woken, until deadline (an absolute
// CLOCK_MONOTONIC time; nullptr: none) or a signal. 0 when woken (or the word
// had already changed), -ETIMEDOUT, -EINTR.
int shared_futex_wait(std::atomic<uint32_t>* word, uint32_t expected,
                      const timespec* deadline) noexcept;

// Wakes every process and thread sleeping on word. Both keep errno.
void shared_futex_wake_all(std::atomic<uint32_t>* word) noexcept;

// now + ms on CLOCK_MONOTONIC, as the deadline the waits take.
timespec monotonic_deadline(int64_t ms) noexcept;

}  // namespace sockshim::domain
