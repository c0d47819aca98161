// Logging for the shim: spdlog, to standard error or SOCKSHIM_LOG_FILE, never to
// standard output. Nothing is formatted unless the level is enabled.
#pragma once

#include <spdlog/spdlog.h>

namespace sockshim::log {

// The logger, created from SOCKSHIM_LOG / SOCKSHIM_LOG_FILE by the first line
// that passes the level (or by start()). It is never destroyed: threads may
// still call hooks while the process exits. nullptr only when the logger itself
// could not be built.
spdlog::logger* get() noexcept;

// The level SOCKSHIM_LOG sets (warn by default). Reading it builds no logger:
// a process that logs nothing, most fork children, never pays for one.
spdlog::level::level_enum threshold() noexcept;

inline bool enabled(spdlog::level::level_enum level) noexcept {
  return level >= threshold() && level != spdlog::level::off;
}

// At start-up: builds the logger now only when the environment asks for
// something a user must see at once (a log file to open, a bad level to report).
void start() noexcept;

template <typename... Args>
void at(spdlog::level::level_enum level, spdlog::format_string_t<Args...> fmt,
        Args&&... args) noexcept {
  if (!enabled(level)) return;
  spdlog::logger* l = get();
  if (!l) return;
  try {
    l->log(level, fmt, std::forward<Args>(args)...);
  } catch (...) {
  }
}

template <typename... Args>
void error(spdlog::format_string_t<Args...> fmt, Args&&... args) noexcept {
  at(spdlog::level::err, fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void warn(spdlog::format_string_t<Args...> fmt, Args&&... args) noexcept {
  at(spdlog::level::warn, fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void info(spdlog::format_string_t<Args...> fmt, Args&&... args) noexcept {
  at(spdlog::level::info, fmt, std::forward<Args>(args)...);
}
template <typename... Args>
void debug(spdlog::format_string_t<Args...> fmt, Args&&... args) noexcept {
  at(spdlog::level::debug, fmt, std::forward<Args>(args)...);
}

// Logs an internal failure with a backtrace (the libgcc unwinder) at error level.
void internal_error(const char* where, const char* what) noexcept;

// The program closed one of the shim's fds: if it was the log file, reopen it.
void check_internal_fds() noexcept;

// A fork child must not reuse a logger whose lock another thread may have held.
void after_fork_child() noexcept;

// Parses a SOCKSHIM_LOG value; false for an unknown name.
bool parse_level(const char* text, spdlog::level::level_enum* out) noexcept;

}  // namespace sockshim::log
