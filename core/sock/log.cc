#include "core/sock/log.h"

#define UNW_LOCAL_ONLY
#include <fcntl.h>
#include <libunwind.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "core/sock/errno_saver.h"
#include "core/sock/real.h"
#include "core/sock/registry.h"

namespace sockshim::log {
namespace {

// SOCKSHIM_LOG_FILE: one of the shim's own fds (close-on-exec, high, noticed if
// the program closes it), written with the real write(), appended to.
class FdSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit FdSink(int fd) : fd_(fd) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    // Closed by the program (and the number perhaps reused): never write to it.
    if (!registry::is_internal(registry::peek(fd_))) return;
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    const char* p = line.data();
    size_t left = line.size();
    while (left > 0) {
      ssize_t n = real::write(fd_, p, left);
      if (n <= 0 && errno == EINTR) continue;
      if (n <= 0) return;
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  void flush_() override {}

 public:
  int fd() const noexcept { return fd_; }

 private:
  int fd_;
};

// SOCKSHIM_LOG's names of the levels.
constexpr struct {
  const char* name;
  spdlog::level::level_enum level;
} kLevels[] = {{"off", spdlog::level::off},     {"error", spdlog::level::err},
               {"warn", spdlog::level::warn},   {"info", spdlog::level::info},
               {"debug", spdlog::level::debug}, {"trace", spdlog::level::trace}};

std::string_view level_name(spdlog::level::level_enum level) noexcept {
  for (const auto& l : kLevels)
    if (l.level == level) return l.name;
  return "error";  // critical, which the shim does not use
}

// A line's level as SOCKSHIM_LOG names it ("warn", where spdlog's %l says
// "warning"), so that what a user greps for is what they set.
class LevelName final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    const std::string_view name = level_name(msg.level);
    dest.append(name.data(), name.data() + name.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<LevelName>();
  }
};

std::atomic<spdlog::logger*> g_logger{nullptr};
std::mutex g_create_lock;

spdlog::logger* create() {
  spdlog::level::level_enum level = spdlog::level::warn;
  const char* env = getenv("SOCKSHIM_LOG");
  bool bad_level = env && *env && !parse_level(env, &level);
  spdlog::sink_ptr sink;
  const char* file = getenv("SOCKSHIM_LOG_FILE");
  bool file_failed = false;
  if (file && *file) {
    ErrnoSaver saved;
    int fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd >= 0)
      sink = std::make_shared<FdSink>(registry::make_internal(fd));
    else
      file_failed = true;
  }
  if (!sink) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto* logger = new spdlog::logger("sockshim", std::move(sink));
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<LevelName>('*').set_pattern("sockshim[%P] %*: %v");
  logger->set_formatter(std::move(formatter));
  logger->set_level(level);
  logger->flush_on(spdlog::level::trace);
  if (bad_level)
    logger->warn(
        "SOCKSHIM_LOG={} is not a level: expected one of off, error, warn, info, debug, "
        "trace; using warn",
        env);
  if (file_failed)
    logger->warn("cannot open SOCKSHIM_LOG_FILE={}: logging to standard error", file);
  return logger;
}

}  // namespace

bool parse_level(const char* text, spdlog::level::level_enum* out) noexcept {
  for (const auto& l : kLevels)
    if (strcmp(text, l.name) == 0) {
      *out = l.level;
      return true;
    }
  return false;
}

spdlog::logger* get() noexcept {
  spdlog::logger* l = g_logger.load(std::memory_order_acquire);
  if (l) [[likely]]
    return l;
  std::lock_guard g(g_create_lock);
  l = g_logger.load(std::memory_order_relaxed);
  if (!l) {
    try {
      l = create();
    } catch (...) {
      return nullptr;
    }
    g_logger.store(l, std::memory_order_release);
  }
  return l;
}

void internal_error(const char* where, const char* what) noexcept {
  error("internal error in {}: {}; the socket falls back to pass-through", where, what);
  unw_context_t ctx;
  unw_cursor_t cursor;
  if (unw_getcontext(&ctx) != 0 || unw_init_local(&cursor, &ctx) != 0) return;
  for (int depth = 0; depth < 32 && unw_step(&cursor) > 0; ++depth) {
    char name[256];
    unw_word_t offset = 0, pc = 0;
    unw_get_reg(&cursor, UNW_REG_IP, &pc);
    if (unw_get_proc_name(&cursor, name, sizeof name, &offset) != 0) strcpy(name, "?");
    error("  #{} 0x{:x} {}+0x{:x}", depth, pc, name, offset);
  }
}

void check_internal_fds() noexcept {
  spdlog::logger* l = g_logger.load(std::memory_order_acquire);
  if (!l || l->sinks().empty()) return;
  auto* sink = dynamic_cast<FdSink*>(l->sinks()[0].get());
  if (!sink || registry::is_internal(registry::peek(sink->fd()))) return;
  // Reopened on next use; the old logger is leaked, as threads may hold it.
  std::lock_guard g(g_create_lock);
  g_logger.store(nullptr, std::memory_order_release);
}

void after_fork_child() noexcept {
  // The old logger may be locked by a thread that does not exist in the child;
  // leak it and build a new one on next use.
  new (&g_create_lock) std::mutex();
  g_logger.store(nullptr, std::memory_order_release);
}

}  // namespace sockshim::log
