#include "policy/sk_msg.h"

#include <algorithm>
#include <cerrno>

namespace sockshim::policy {

void SkMsg::assign(std::span<const uint8_t> bytes) {
  bytes_.assign(bytes.begin(), bytes.end());
  apply_bytes_ = cork_bytes_ = 0;
  reset_window();
}

// After push and pop the kernel points data/data_end at the first scatterlist
// element again; the element layout is not modelled, so that is the first frag.
void SkMsg::reset_window() noexcept {
  data_start_ = 0;
  data_end_ = std::min(size(), kSkMsgFragSize);
}

int SkMsg::pull_data(uint32_t start, uint32_t end, uint64_t flags) noexcept {
  if (flags != 0 || end <= start) return -EINVAL;
  if (start >= size() || end > size()) return -EINVAL;
  data_start_ = start;
  data_end_ = end;
  return 0;
}

int SkMsg::push_data(uint32_t start, uint32_t len, uint64_t flags, std::span<const uint8_t> fill) {
  if (flags != 0) return -EINVAL;
  if (len == 0) return 0;
  if (start > size()) return -EINVAL;
  // The kernel's size is a u32.
  if (static_cast<uint64_t>(size()) + len > UINT32_MAX) return -ENOMEM;
  std::vector<uint8_t> ins(len, 0);
  if (!fill.empty())
    for (uint32_t i = 0; i < len; ++i) ins[i] = fill[i % fill.size()];
  bytes_.insert(bytes_.begin() + start, ins.begin(), ins.end());
  reset_window();
  return 0;
}

int SkMsg::pop_data(uint32_t start, uint32_t len, uint64_t flags) noexcept {
  if (flags != 0) return -EINVAL;
  if (len == 0) return 0;
  if (start >= size() || static_cast<uint64_t>(start) + len > size()) return -EINVAL;
  bytes_.erase(bytes_.begin() + start, bytes_.begin() + start + len);
  reset_window();
  return 0;
}

}  // namespace sockshim::policy
