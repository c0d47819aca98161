#include "core/sock/log.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unwind.h>

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

std::atomic<int> g_threshold{-1};  // a level_enum; -1 until SOCKSHIM_LOG is read
std::atomic<spdlog::logger*> g_logger{nullptr};
std::mutex g_create_lock;

bool bad_level_in_env() noexcept {
  spdlog::level::level_enum ignored;
  const char* env = getenv("SOCKSHIM_LOG");
  return env && *env && !parse_level(env, &ignored);
}

spdlog::logger* create() {
  const char* env = getenv("SOCKSHIM_LOG");
  bool bad_level = bad_level_in_env();
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
  logger->set_level(threshold());
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

// The return addresses on this thread's stack, innermost first: the caller of
// _Unwind_Backtrace and 32 frames above it.
struct Frames {
  static constexpr int kMax = 1 + 32;
  uintptr_t pc[kMax];
  int count = 0;
};

_Unwind_Reason_Code add_frame(_Unwind_Context* ctx, void* arg) {
  auto* frames = static_cast<Frames*>(arg);
  uintptr_t pc = _Unwind_GetIP(ctx);
  if (pc == 0 || frames->count == Frames::kMax) return _URC_END_OF_STACK;  // 0: the outermost
  frames->pc[frames->count++] = pc;
  return _URC_NO_REASON;
}

// The function of an object file containing `addr` (an address in the file's
// own terms), from its .symtab, which names hidden functions too, or else its
// .dynsym. The file is mapped, not read: only the pages looked at are loaded.
bool symbol_in_file(const char* path, uintptr_t addr, char* name, size_t size,
                    uintptr_t* offset) noexcept {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st {};
  void* map = fstat(fd, &st) == 0 && st.st_size > 0
                  ? mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0)
                  : MAP_FAILED;
  real::close(fd);
  if (map == MAP_FAILED) return false;
  const auto* base = static_cast<const unsigned char*>(map);
  const auto file_size = static_cast<size_t>(st.st_size);
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(base);
  bool found = false;
  if (file_size >= sizeof *eh && memcmp(eh->e_ident, ELFMAG, SELFMAG) == 0 &&
      eh->e_ident[EI_CLASS] == ELFCLASS64 && eh->e_shentsize == sizeof(Elf64_Shdr) &&
      eh->e_shoff + eh->e_shnum * sizeof(Elf64_Shdr) <= file_size) {
    const auto* sh = reinterpret_cast<const Elf64_Shdr*>(base + eh->e_shoff);
    for (Elf64_Word type : {SHT_SYMTAB, SHT_DYNSYM}) {
      for (int i = 0; i < eh->e_shnum && !found; ++i) {
        const Elf64_Shdr& syms = sh[i];
        if (syms.sh_type != type || syms.sh_link >= eh->e_shnum ||
            syms.sh_offset + syms.sh_size > file_size)
          continue;
        const Elf64_Shdr& strs = sh[syms.sh_link];
        if (strs.sh_offset + strs.sh_size > file_size) continue;
        const auto* sym = reinterpret_cast<const Elf64_Sym*>(base + syms.sh_offset);
        for (size_t k = 0; k < syms.sh_size / sizeof(Elf64_Sym); ++k) {
          const Elf64_Sym& s = sym[k];
          if (ELF64_ST_TYPE(s.st_info) != STT_FUNC || addr < s.st_value ||
              addr >= s.st_value + s.st_size || s.st_name >= strs.sh_size)
            continue;
          const char* str = reinterpret_cast<const char*>(base + strs.sh_offset + s.st_name);
          snprintf(name, size, "%.*s", static_cast<int>(strnlen(str, strs.sh_size - s.st_name)),
                   str);
          *offset = addr - s.st_value;
          found = true;
          break;
        }
      }
      if (found) break;
    }
  }
  munmap(map, file_size);
  return found;
}

// The function containing a return address, as libunwind's unw_get_proc_name
// named it: its symbol and the offset into it.
bool symbol_of(uintptr_t pc, char* name, size_t size, uintptr_t* offset) noexcept {
  Dl_info info{};
  link_map* object = nullptr;
  // pc - 1: a return address may be the first byte after the calling function.
  if (dladdr1(reinterpret_cast<void*>(pc - 1), &info, reinterpret_cast<void**>(&object),
              RTLD_DL_LINKMAP) == 0 ||
      !object)
    return false;
  const char* path = object->l_name && *object->l_name ? object->l_name : "/proc/self/exe";
  if (!symbol_in_file(path, pc - 1 - object->l_addr, name, size, offset)) return false;
  *offset += 1;
  return true;
}

}  // namespace

spdlog::level::level_enum threshold() noexcept {
  int t = g_threshold.load(std::memory_order_relaxed);
  if (t < 0) [[unlikely]] {
    spdlog::level::level_enum level = spdlog::level::warn;  // also for a bad name
    const char* env = getenv("SOCKSHIM_LOG");
    if (env && *env) parse_level(env, &level);
    t = level;
    g_threshold.store(t, std::memory_order_relaxed);
  }
  return static_cast<spdlog::level::level_enum>(t);
}

void start() noexcept {
  const char* file = getenv("SOCKSHIM_LOG_FILE");
  if ((file && *file) || bad_level_in_env()) get();
}

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
  if (!enabled(spdlog::level::err)) return;
  Frames frames;
  _Unwind_Backtrace(add_frame, &frames);
  // Frame 0 is this function: the trace starts at its caller.
  for (int depth = 0; depth + 1 < frames.count; ++depth) {
    uintptr_t pc = frames.pc[depth + 1];
    char name[256];
    uintptr_t offset = 0;
    if (!symbol_of(pc, name, sizeof name, &offset)) strcpy(name, "?");
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
  // leak it and build a new one on next use. SOCKSHIM_LOG is read again, as
  // the parent's next logger would have read it.
  new (&g_create_lock) std::mutex();
  g_threshold.store(-1, std::memory_order_relaxed);
  g_logger.store(nullptr, std::memory_order_release);
}

}  // namespace sockshim::log
