// What the send path does to an SkMsg between runs: append the caller's bytes
// (sk_msg_memcopy_from_iter) and take bytes off the front as they are sent or
// queued. The message's apply/cork values survive both, as the kernel's
// msg->apply_bytes and msg->cork_bytes do across re-runs.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>
#include <vector>

#include "policy/sk_msg.h"

namespace sockshim {

// The kernel's ring of MAX_MSG_FRAGS page frags of up to 32 KiB: a larger send
// runs the verdict once per ring-full.
inline constexpr uint32_t kSkMsgMaxBytes = 17 * policy::kSkMsgFragSize;

// Points data/data_end at the first frag again, keeping apply/cork.
inline void sk_msg_reset_window(policy::SkMsg& msg) noexcept {
  if (msg.size() > 0) {
    msg.pull_data(0, std::min(msg.size(), policy::kSkMsgFragSize), 0);
  } else {
    uint32_t apply = msg.apply_bytes(), cork = msg.cork_bytes();
    msg.assign({});
    msg.apply_bytes(apply);
    msg.cork_bytes(cork);
  }
}

// Removes the first n bytes and returns them (moved, not copied, when n is all).
inline std::vector<uint8_t> sk_msg_take_front(policy::SkMsg& msg, uint32_t n) {
  auto& b = msg.mutable_bytes();
  std::vector<uint8_t> out;
  if (n >= b.size()) {
    out = std::move(b);
    b.clear();
  } else {
    out.assign(b.begin(), b.begin() + n);
    b.erase(b.begin(), b.begin() + n);
  }
  sk_msg_reset_window(msg);
  return out;
}

inline void sk_msg_consume_front(policy::SkMsg& msg, uint32_t n) noexcept {
  auto& b = msg.mutable_bytes();
  b.erase(b.begin(), b.begin() + std::min<size_t>(n, b.size()));
  sk_msg_reset_window(msg);
}

// sk_msg_free: discards everything, returns how many bytes that was.
inline uint32_t sk_msg_free(policy::SkMsg& msg) noexcept {
  uint32_t n = msg.size();
  msg.mutable_bytes().clear();
  sk_msg_reset_window(msg);
  return n;
}

}  // namespace sockshim
