// What a user finds in SOCKSHIM_LOG_FILE when an internal invariant breaks: the
// error line and a backtrace that names the functions that led to it.
#include <catch2/catch.hpp>

#include <stdlib.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

#include "core/sock/log.h"

namespace {

// Not inlined, so that each is a frame of its own in the backtrace.
[[gnu::noinline]] void verdict_program_fails() {
  try {
    throw std::logic_error("a map index out of range");
  } catch (const std::exception& e) {
    sockshim::log::internal_error("log_test verdict", e.what());
  }
  asm volatile("");  // no tail call: this frame stays on the stack
}

[[gnu::noinline]] void run_verdict() {
  verdict_program_fails();
  asm volatile("");
}

}  // namespace

TEST_CASE("an internal error is logged with a backtrace of its callers") {
  char path[] = "/tmp/sockshim-log-test-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  // Both read on first use, by the line below.
  setenv("SOCKSHIM_LOG", "error", 1);
  setenv("SOCKSHIM_LOG_FILE", path, 1);
  run_verdict();
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  unlink(path);
  const std::string log = text.str();
  INFO(log);
  CHECK(log.find("error: internal error in log_test verdict: a map index out of range; the "
                 "socket falls back to pass-through\n") != std::string::npos);
  // Frame #0 is the function that called internal_error, then its callers.
  const size_t first = log.find("error:   #0 0x");
  REQUIRE(first != std::string::npos);
  CHECK(log.find("verdict_program_fails", first) < log.find("\n", first));
  const size_t second = log.find("error:   #1 0x");
  REQUIRE(second != std::string::npos);
  CHECK(log.find("run_verdict", second) < log.find("\n", second));
  CHECK(log.find(" main+0x") != std::string::npos);
}
