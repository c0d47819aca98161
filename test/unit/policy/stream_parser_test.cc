#include <catch2/catch.hpp>
#include <cerrno>
#include <string>

#include "policy/stream_parser.h"

using sockshim::policy::FrameSpec;
using sockshim::policy::parse_frame;

namespace {
int64_t parse(const FrameSpec& s, const std::string& b) {
  return parse_frame(s, {reinterpret_cast<const uint8_t*>(b.data()), b.size()});
}
}  // namespace

TEST_CASE("whole returns every byte, 0 for none, an error over max", "[policy][parser]") {
  FrameSpec s;
  CHECK(parse(s, "") == 0);
  CHECK(parse(s, "abc") == 3);
  s.max = 2;
  CHECK(parse(s, "abc") == -EMSGSIZE);
}

TEST_CASE("length_prefix", "[policy][parser]") {
  FrameSpec s;
  s.kind = FrameSpec::Kind::length_prefix;
  s.size = 4;
  s.adjust = 4;  // the length counts the payload only
  CHECK(parse(s, std::string("\0\0", 2)) == 0);
  CHECK(parse(s, std::string("\0\0\0\3ab", 6)) == 0);
  CHECK(parse(s, std::string("\0\0\0\3abcNEXT", 11)) == 7);
  s.max = 6;
  CHECK(parse(s, std::string("\0\0\0\3", 4)) == -EMSGSIZE);
  s.max = 0;
  s.adjust = 0;  // a length of 3 cannot hold its own 4-byte header
  CHECK(parse(s, std::string("\0\0\0\3abc", 7)) == -EBADMSG);
  FrameSpec le;
  le.kind = FrameSpec::Kind::length_prefix;
  le.offset = 1;
  le.size = 2;
  le.big_endian = false;
  CHECK(parse(le, std::string("T\5\0xy", 5)) == 5);
  FrameSpec huge = le;
  huge.size = 8;
  huge.offset = 0;
  CHECK(parse(huge, std::string("\xff\xff\xff\xff\xff\xff\xff\xff", 8)) == -EBADMSG);
}

TEST_CASE("delimiter", "[policy][parser]") {
  FrameSpec s;
  s.kind = FrameSpec::Kind::delimiter;
  s.delimiter = {'\r', '\n'};
  CHECK(parse(s, "GET") == 0);
  CHECK(parse(s, "GET\r") == 0);
  CHECK(parse(s, "GET\r\nX") == 5);
  s.max = 5;
  CHECK(parse(s, "GET\r\n") == 5);
  CHECK(parse(s, "GETT\r\n") == -EMSGSIZE);
  CHECK(parse(s, "GETTT") == -EMSGSIZE);
  CHECK(parse(s, "GETT") == 0);
}

TEST_CASE("fixed", "[policy][parser]") {
  FrameSpec s;
  s.kind = FrameSpec::Kind::fixed;
  s.fixed = 4;
  CHECK(parse(s, "abc") == 0);
  CHECK(parse(s, "abcdef") == 4);
  s.max = 3;
  CHECK(parse(s, "abcdef") == -EMSGSIZE);
}
