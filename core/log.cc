#include "core/log.h"

#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace sockshim::log {
namespace {

std::atomic<spdlog::logger*> g_logger{nullptr};
std::mutex g_create_lock;

spdlog::logger* create() {
  spdlog::level::level_enum level = spdlog::level::warn;
  const char* env = getenv("SOCKSHIM_LOG");
  bool bad_level = env && *env && !parse_level(env, &level);
  spdlog::sink_ptr sink;
  const char* file = getenv("SOCKSHIM_LOG_FILE");
  if (file && *file) {
    try {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(file);
    } catch (const std::exception&) {
      sink = nullptr;
    }
  }
  if (!sink) sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  auto* logger = new spdlog::logger("sockshim", std::move(sink));
  logger->set_pattern("sockshim[%P] %l: %v");
  logger->set_level(level);
  logger->flush_on(spdlog::level::trace);
  if (bad_level)
    logger->warn(
        "SOCKSHIM_LOG={} is not a level: expected one of off, error, warn, info, debug, "
        "trace; using warn",
        env);
  if (file && *file && !dynamic_cast<spdlog::sinks::basic_file_sink_mt*>(logger->sinks()[0].get()))
    logger->warn("cannot open SOCKSHIM_LOG_FILE={}: logging to standard error", file);
  return logger;
}

}  // namespace

bool parse_level(const char* text, spdlog::level::level_enum* out) noexcept {
  static constexpr struct {
    const char* name;
    spdlog::level::level_enum level;
  } kLevels[] = {{"off", spdlog::level::off},     {"error", spdlog::level::err},
                 {"warn", spdlog::level::warn},   {"info", spdlog::level::info},
                 {"debug", spdlog::level::debug}, {"trace", spdlog::level::trace}};
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

void after_fork_child() noexcept {
  // The old logger may be locked by a thread that does not exist in the child;
  // leak it and build a new one on next use.
  new (&g_create_lock) std::mutex();
  g_logger.store(nullptr, std::memory_order_release);
}

}  // namespace sockshim::log
