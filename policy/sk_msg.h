// SkMsg: the message an sk_msg program runs on, with the kernel's arithmetic for
// bpf_msg_{apply,cork}_bytes and bpf_msg_{pull,push,pop}_data (net/core/filter.c).
// Plain data: the core's send path builds one per verdict run and sends what is
// left in bytes() afterwards.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace sockshim::policy {

// The kernel copies user bytes into page frags of up to 32 KiB; data/data_end
// cover only the first one (sk_msg_compute_data_pointers).
inline constexpr uint32_t kSkMsgFragSize = 32768;

class SkMsg {
 public:
  SkMsg() = default;
  explicit SkMsg(std::span<const uint8_t> bytes) { assign(bytes); }

  // Replaces the content and resets the window and apply/cork values.
  void assign(std::span<const uint8_t> bytes);

  // msg->sg.size: changed at once by push and pop.
  uint32_t size() const noexcept { return static_cast<uint32_t>(bytes_.size()); }
  std::span<const uint8_t> bytes() const noexcept { return bytes_; }
  std::vector<uint8_t>& mutable_bytes() noexcept { return bytes_; }

  // The window [data, data_end) a program can read: offsets into bytes().
  uint32_t data_start() const noexcept { return data_start_; }
  uint32_t data_end() const noexcept { return data_end_; }
  std::span<const uint8_t> data() const noexcept {
    return std::span<const uint8_t>(bytes_).subspan(data_start_, data_end_ - data_start_);
  }

  // bpf_msg_apply_bytes / bpf_msg_cork_bytes: store the value, return 0.
  int apply_bytes(uint32_t n) noexcept {
    apply_bytes_ = n;
    return 0;
  }
  int cork_bytes(uint32_t n) noexcept {
    cork_bytes_ = n;
    return 0;
  }
  uint32_t apply_bytes() const noexcept { return apply_bytes_; }
  uint32_t cork_bytes() const noexcept { return cork_bytes_; }

  // bpf_msg_pull_data(start, end, flags): -EINVAL for flags, end <= start, start
  // at or past the end, end past the end; else the window becomes [start, end).
  int pull_data(uint32_t start, uint32_t end, uint64_t flags) noexcept;

  // bpf_msg_push_data(start, len, flags): inserts len bytes at start (start ==
  // size appends). The kernel leaves them uninitialised; here they are copied
  // from fill (repeated when shorter than len) or zero when fill is empty.
  // -EINVAL for flags or start > size; len 0 is a no-op.
  int push_data(uint32_t start, uint32_t len, uint64_t flags, std::span<const uint8_t> fill = {});

  // bpf_msg_pop_data(start, len, flags): removes [start, start + len).
  // -EINVAL for flags, start >= size or start + len > size; len 0 is a no-op.
  int pop_data(uint32_t start, uint32_t len, uint64_t flags) noexcept;

 private:
  void reset_window() noexcept;

  std::vector<uint8_t> bytes_;
  uint32_t data_start_ = 0, data_end_ = 0;
  uint32_t apply_bytes_ = 0, cork_bytes_ = 0;
};

}  // namespace sockshim::policy
