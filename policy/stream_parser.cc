#include "policy/stream_parser.h"

#include "policy/find_bytes.h"

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sockshim::policy {
namespace {

int64_t check_max(const FrameSpec& spec, uint64_t len) noexcept {
  if (spec.max != 0 && len > spec.max) return -EMSGSIZE;
  return static_cast<int64_t>(len);
}

int64_t parse_length_prefix(const FrameSpec& spec, std::span<const uint8_t> buf) noexcept {
  const uint64_t header = uint64_t{spec.offset} + spec.size;
  if (buf.size() < header) return 0;
  uint64_t v = 0;
  const uint8_t* p = buf.data() + spec.offset;
  for (uint32_t i = 0; i < spec.size; ++i) {
    const uint32_t b = spec.big_endian ? i : spec.size - 1 - i;
    v = (v << 8) | p[b];
  }
  // Signed arithmetic on a value that may not fit: a frame length beyond 2^62 is
  // over any limit anyway.
  if (v > (uint64_t{1} << 62)) return spec.max != 0 ? -EMSGSIZE : -EBADMSG;
  const int64_t len = static_cast<int64_t>(v) + spec.adjust;
  if (len < static_cast<int64_t>(header) || len == 0) return -EBADMSG;
  const int64_t r = check_max(spec, static_cast<uint64_t>(len));
  if (r < 0) return r;
  return static_cast<uint64_t>(len) <= buf.size() ? len : 0;
}

int64_t parse_delimiter(const FrameSpec& spec, std::span<const uint8_t> buf) noexcept {
  const auto& d = spec.delimiter;
  const size_t limit = spec.max != 0 ? std::min<uint64_t>(buf.size(), spec.max) : buf.size();
  const uint8_t* hit = find_bytes(buf.data(), limit, d.data(), d.size());
  if (hit) return static_cast<int64_t>(hit - buf.data() + d.size());
  if (spec.max != 0 && buf.size() >= spec.max) return -EMSGSIZE;
  return 0;
}

}  // namespace

int64_t parse_frame(const FrameSpec& spec, std::span<const uint8_t> buf) noexcept {
  switch (spec.kind) {
    case FrameSpec::Kind::whole:
      return check_max(spec, buf.size());
    case FrameSpec::Kind::length_prefix:
      return parse_length_prefix(spec, buf);
    case FrameSpec::Kind::delimiter:
      return parse_delimiter(spec, buf);
    case FrameSpec::Kind::fixed: {
      const int64_t r = check_max(spec, spec.fixed);
      if (r < 0) return r;
      return buf.size() >= spec.fixed ? r : 0;
    }
  }
  return -EINVAL;
}

}  // namespace sockshim::policy
