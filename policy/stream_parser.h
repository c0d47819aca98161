// Stream parsers (`sk_skb/stream_parser` programs): cut a byte stream into
// frames, as a kernel parser program returns a frame length to strparser.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace sockshim::policy {

struct FrameSpec {
  enum class Kind : uint8_t { whole, length_prefix, delimiter, fixed };
  Kind kind = Kind::whole;
  // length_prefix: an unsigned integer of `size` bytes (1, 2, 4 or 8) at
  // `offset`; the frame is that value plus `adjust` bytes long.
  uint32_t offset = 0;
  uint32_t size = 4;
  bool big_endian = true;
  int64_t adjust = 0;
  std::vector<uint8_t> delimiter;  // delimiter: the frame ends after it
  uint64_t fixed = 0;              // fixed: every frame is this long
  uint64_t max = 0;                // 0: no limit
};

// Given the bytes buffered so far (from the start of a frame), returns the frame
// length (> 0), 0 when more bytes are needed, or a negative errno:
// -EMSGSIZE for a frame over `max` (known as soon as the length is, or as soon as
// `max` bytes hold no delimiter), -EBADMSG for a length prefix shorter than its
// own header. `whole` returns every byte buffered (the kernel's `return skb->len`).
int64_t parse_frame(const FrameSpec& spec, std::span<const uint8_t> buf) noexcept;

}  // namespace sockshim::policy
