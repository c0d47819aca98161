#include "core/sock/real.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/sock/errno_saver.h"

namespace sockshim::real {
namespace {

// A diagnostic that must work before anything else does: one raw write to stderr.
void complain(const char* what, const char* name) noexcept {
  char line[160];
  int n = snprintf(line, sizeof line, "sockshim: %s: %s\n", what, name);
  if (n > 0) ::syscall(SYS_write, 2, line, static_cast<size_t>(n));
}

// The address range of the object the shim lives in (the preloaded library, or
// a test binary linking the hooks), found once. dladdr() per symbol would scan
// symbol tables: millions of instructions at every program's start-up.
struct Range {
  uintptr_t lo = UINTPTR_MAX, hi = 0;
};
std::atomic<uintptr_t> g_own_lo{0}, g_own_hi{0};

int find_own_object(dl_phdr_info* info, size_t, void* data) noexcept {
  auto here = reinterpret_cast<uintptr_t>(&complain);
  Range r;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD) continue;
    uintptr_t start = info->dlpi_addr + ph.p_vaddr;
    r.lo = std::min(r.lo, start);
    r.hi = std::max(r.hi, start + ph.p_memsz);
  }
  if (here < r.lo || here >= r.hi) return 0;
  *static_cast<Range*>(data) = r;
  return 1;
}

bool is_ours(void* sym) noexcept {
  if (g_own_hi.load(std::memory_order_acquire) == 0) {
    Range r;
    if (!dl_iterate_phdr(find_own_object, &r)) return false;
    g_own_lo.store(r.lo, std::memory_order_relaxed);
    g_own_hi.store(r.hi, std::memory_order_release);
  }
  auto addr = reinterpret_cast<uintptr_t>(sym);
  return addr >= g_own_lo.load(std::memory_order_relaxed) &&
         addr < g_own_hi.load(std::memory_order_relaxed);
}

// dlsym(RTLD_NEXT) finds the definition after ours in the lookup order. Should
// that be ours again (the library loaded twice, or a broken order), libc itself
// is asked; a hook that still resolves to itself would recurse forever.
void* lookup(const char* name) noexcept {
  ErrnoSaver saved;
  void* sym = dlsym(RTLD_NEXT, name);
  if (!sym || is_ours(sym)) {
    if (sym) complain("symbol resolves to the shim itself, asking libc", name);
    void* libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    sym = libc ? dlsym(libc, name) : nullptr;
    if (sym && is_ours(sym)) sym = nullptr;
    if (!sym) complain("cannot resolve the real function", name);
  }
  return sym;
}

template <typename Fn>
Fn resolve(std::atomic<Fn>& slot, const char* name) noexcept {
  Fn fn = reinterpret_cast<Fn>(lookup(name));
  if (fn) slot.store(fn, std::memory_order_relaxed);
  return fn;
}

std::atomic<fcntl_fn> fcntl_ptr;
std::atomic<ioctl_fn> ioctl_ptr;
std::atomic<syscall_fn> syscall_ptr;

}  // namespace

// The first call through a slot resolves it. Without the real function there is
// no correct answer to give (and calling through null would be worse): abort.
#define SOCKSHIM_DEFINE_REAL(name, ret, params, args)        \
  namespace {                                                \
  ret first_##name params {                                  \
    name##_fn fn = resolve_##name();                         \
    if (!fn) abort();                                        \
    return fn args;                                          \
  }                                                          \
  }                                                          \
  constinit std::atomic<name##_fn> name##_ptr{first_##name}; \
  name##_fn resolve_##name() noexcept {                      \
    return resolve(name##_ptr, #name);                       \
  }
SOCKSHIM_REAL_FUNCTIONS(SOCKSHIM_DEFINE_REAL)
#undef SOCKSHIM_DEFINE_REAL

int fcntl(int fd, int cmd, unsigned long arg) noexcept {
  fcntl_fn fn = fcntl_ptr.load(std::memory_order_relaxed);
  if (!fn) [[unlikely]]
    fn = resolve(fcntl_ptr, "fcntl");
  return fn(fd, cmd, arg);
}

int ioctl(int fd, unsigned long request, unsigned long arg) noexcept {
  ioctl_fn fn = ioctl_ptr.load(std::memory_order_relaxed);
  if (!fn) [[unlikely]]
    fn = resolve(ioctl_ptr, "ioctl");
  return fn(fd, request, arg);
}

long syscall(long nr, long a1, long a2, long a3, long a4, long a5, long a6) noexcept {
  syscall_fn fn = syscall_ptr.load(std::memory_order_relaxed);
  if (!fn) [[unlikely]]
    fn = resolve(syscall_ptr, "syscall");
  return fn(nr, a1, a2, a3, a4, a5, a6);
}

bool resolve_all() noexcept {
  bool ok = true;
#define SOCKSHIM_RESOLVE(name, ret, params, args) ok &= resolve_##name() != nullptr;
  SOCKSHIM_REAL_FUNCTIONS(SOCKSHIM_RESOLVE)
#undef SOCKSHIM_RESOLVE
  ok &= resolve(fcntl_ptr, "fcntl") != nullptr;
  ok &= resolve(ioctl_ptr, "ioctl") != nullptr;
  ok &= resolve(syscall_ptr, "syscall") != nullptr;
  return ok;
}

}  // namespace sockshim::real
