#include "test/support/wait.h"

#include <chrono>
#include <thread>

#include "core/sock/blocked_waits.h"

namespace test_support {

bool eventually(const std::function<bool()>& pred, int ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return pred();
}

bool wait_blocked(int n, int ms) {
  return eventually([n] { return sockshim::blocked_waits() >= n; }, ms);
}

}  // namespace test_support
