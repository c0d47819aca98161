#include "core/psock/strparser.h"

#include <errno.h>

namespace sockshim {

void Strparser::feed(std::span<const uint8_t> bytes) {
  // Consumed bytes are reclaimed before the buffer grows, so it holds at most
  // a frame plus one read.
  if (off_ > 0 && (off_ == buf_.size() || off_ >= buf_.size() / 2)) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<ptrdiff_t>(off_));
    off_ = 0;
  }
  buf_.insert(buf_.end(), bytes.begin(), bytes.end());
}

int64_t Strparser::parse(const policy::Program& parser, size_t rcvbuf,
                         const policy::SocketTuple* sk, policy::Helpers* helpers) noexcept {
  const size_t avail = buffered();
  if (avail == 0) return 0;
  int64_t len = parser.parse(head(avail), sk, helpers);
  if (len < 0) return len;
  if (len == 0) {
    // A frame longer than what is buffered is over rcvbuf once that is.
    if (avail > rcvbuf) return -EMSGSIZE;
    seen_ = avail;
    return 0;
  }
  if (static_cast<uint64_t>(len) > rcvbuf) return -EMSGSIZE;
  // The length must reach into bytes the parser had not seen (__strp_recv).
  if (seen_ > 0 && static_cast<uint64_t>(len) <= seen_) return -EPROTO;
  if (static_cast<uint64_t>(len) > avail) {
    seen_ = avail;
    return 0;
  }
  return len;
}

void Strparser::consume(size_t len) noexcept {
  off_ += len;
  seen_ = 0;
  if (off_ == buf_.size()) {
    buf_.clear();
    off_ = 0;
  }
}

void Strparser::clear() noexcept {
  std::vector<uint8_t>().swap(buf_);
  off_ = 0;
  seen_ = 0;
}

}  // namespace sockshim
