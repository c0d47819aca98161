// The stream parser of a psock (net/strparser/strparser.c as skmsg.c drives
// it): bytes read from the socket accumulate until the parser program names
// the length of the frame at their head; each complete frame then goes to the
// verdict. What the parser returns means what it means there (§4.1).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "policy/program.h"

namespace sockshim {

class Strparser {
 public:
  // Appends bytes read from the socket. Throws std::bad_alloc.
  void feed(std::span<const uint8_t> bytes);

  // The length of the frame at the head (> 0), 0 when more bytes are needed,
  // or a negative errno that stops the parser for good (strp_abort_strp): the
  // parser's own error, EMSGSIZE for a frame over rcvbuf, EPROTO for a length
  // that does not reach past the bytes the parser already found too short.
  // sk and helpers go to a bytecode parser (Program::parse).
  int64_t parse(const policy::Program& parser, size_t rcvbuf,
                const policy::SocketTuple* sk = nullptr,
                policy::Helpers* helpers = nullptr) noexcept;

  // The first len buffered bytes (len <= buffered()).
  std::span<const uint8_t> head(size_t len) const noexcept { return {buf_.data() + off_, len}; }
  // The same bytes for a verdict program to rewrite.
  std::span<uint8_t> head(size_t len) noexcept { return {buf_.data() + off_, len}; }
  void consume(size_t len) noexcept;

  // Bytes read and not yet consumed: a partial frame and what follows it.
  size_t buffered() const noexcept { return buf_.size() - off_; }
  // True while the head frame is incomplete (the partial-frame timer runs).
  bool partial() const noexcept { return seen_ > 0; }
  void clear() noexcept;

 private:
  std::vector<uint8_t> buf_;
  size_t off_ = 0;   // start of the unconsumed bytes
  size_t seen_ = 0;  // bytes of the head frame the parser found too short
};

}  // namespace sockshim
