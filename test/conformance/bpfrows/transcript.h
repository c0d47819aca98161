// The canonical transcript of a row: one line per libbpf call (its return
// value and errno), per send, per map value read back, and per reader (every
// byte it got and how reading ended). The same row under the kernel and under
// the shim must print the same lines.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <thread>

namespace bpfrows {

// "what: R" for a libbpf call's result: R is "fd" for a new fd (fd numbers
// are the process's business), the value when not negative, else the value
// and errno's name. Returns r.
int call(const std::string& what, int r, bool returns_fd = false);

// "send NAME "BYTES": N" or "-1 ENAME".
ssize_t send_bytes(const char* name, int fd, const std::string& bytes);

// bytes printable: \xNN for anything but graphic ASCII and space.
std::string show(const std::string& bytes);

// Prints a line of the transcript.
void line(const std::string& text);

// A step that is not the row's (a socket pair, the cgroup) failed: says so
// with errno on stderr and exits 2.
[[noreturn]] void setup_failed(const std::string& what);

// Reads fd until EOF, an error or the deadline, retrying recv(MSG_DONTWAIT)
// every millisecond: a row measures what the receive path delivers, not
// readiness.
class Reader {
 public:
  Reader(const char* name, int fd);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // Waits until at least n bytes came; false when not within 5 s of the
  // reader's start (one bound for all the waits of a row, which may fail).
  bool wait_bytes(size_t n) const;
  struct Result {
    std::string bytes, end;  // end: EOF, "error ENAME", or "open" (neither within the bound)
  };
  // Waits (bounded) for the end; what came.
  Result result();
  // result() as a line: "NAME: N bytes "BYTES" END".
  void report();
  const char* name() const { return name_; }

 private:
  void loop();

  const char* name_;
  int fd_;
  std::chrono::steady_clock::time_point wait_limit_;
  std::mutex mu_;
  std::string bytes_, end_;
  std::atomic<size_t> got_{0};
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace bpfrows
