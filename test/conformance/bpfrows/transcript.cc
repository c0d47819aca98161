#include "transcript.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

namespace bpfrows {
namespace {

using Clock = std::chrono::steady_clock;

// How long a reader waits for its end, and a row for bytes it waits on: only
// reached when something is wrong (the transcript then shows the shortfall).
constexpr auto kLimit = std::chrono::seconds(5);

std::string errno_name(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : std::to_string(e);
}

}  // namespace

void line(const std::string& text) {
  std::printf("%s\n", text.c_str());
  std::fflush(stdout);
}

void setup_failed(const std::string& what) {
  std::fprintf(stderr, "bpf_rows_loader: %s: %s\n", what.c_str(), strerror(errno));
  std::exit(2);
}

int call(const std::string& what, int r, bool returns_fd) {
  const int e = errno;
  if (r >= 0)
    line(what + ": " + (returns_fd ? "fd" : std::to_string(r)));
  else
    line(what + ": " + std::to_string(r) + " " + errno_name(e));
  errno = e;
  return r;
}

std::string show(const std::string& bytes) {
  std::string s;
  for (unsigned char ch : bytes) {
    if (ch >= 0x20 && ch < 0x7f && ch != '\\' && ch != '"') {
      s += static_cast<char>(ch);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof hex, "\\x%02x", ch);
      s += hex;
    }
  }
  return s;
}

ssize_t send_bytes(const char* name, int fd, const std::string& bytes) {
  const ssize_t r = send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  const int e = errno;
  line(std::string("send ") + name + " \"" + show(bytes) +
       "\": " + (r >= 0 ? std::to_string(r) : "-1 " + errno_name(e)));
  return r;
}

Reader::Reader(const char* name, int fd)
    : name_(name), fd_(fd), wait_limit_(Clock::now() + kLimit), thread_([this] { loop(); }) {}

Reader::~Reader() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

void Reader::loop() {
  char buf[65536];
  std::string end;
  const auto deadline = Clock::now() + std::chrono::seconds(30);  // a row never lasts this long
  while (!stop_ && Clock::now() < deadline) {
    const ssize_t n = recv(fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      std::lock_guard<std::mutex> lock(mu_);
      bytes_.append(buf, static_cast<size_t>(n));
      got_ += static_cast<size_t>(n);
    } else if (n == 0) {
      end = "EOF";
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } else {
      end = "error " + errno_name(errno);
      break;
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  end_ = end.empty() ? "open" : end;
}

bool Reader::wait_bytes(size_t n) const {
  while (got_ < n && Clock::now() < wait_limit_)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return got_ >= n;
}

Reader::Result Reader::result() {
  const auto deadline = Clock::now() + kLimit;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!end_.empty()) break;
    }
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mu_);
  return {bytes_, end_.empty() ? "open" : end_};
}

void Reader::report() {
  const Result r = result();
  line(std::string(name_) + ": " + std::to_string(r.bytes.size()) + " bytes \"" + show(r.bytes) +
       "\" " + r.end);
}

}  // namespace bpfrows
