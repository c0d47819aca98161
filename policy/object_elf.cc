#include "policy/object_elf.h"

#include <dlfcn.h>
#include <linux/bpf.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <mutex>

#if __has_include(<bpf/libbpf.h>)
#include <bpf/libbpf.h>
#define SOCKSHIM_LIBBPF_HEADERS 1
#endif

namespace sockshim::policy {

namespace {

std::string quoted(const std::string& s) {
  return "\"" + s + "\"";
}

#ifdef SOCKSHIM_LIBBPF_HEADERS

// The libbpf functions used, resolved from libbpf.so.1 (the 1.x ABI).
struct Libbpf {
  decltype(&bpf_object__open_file) open_file;
  decltype(&bpf_object__find_program_by_name) find_program;
  decltype(&bpf_object__next_program) next_program;
  decltype(&bpf_object__load) load;
  decltype(&bpf_object__close) close;
  decltype(&bpf_program__name) name;
  decltype(&bpf_program__section_name) section;
  decltype(&bpf_program__type) type;
  decltype(&bpf_program__expected_attach_type) expected;
  decltype(&bpf_program__set_expected_attach_type) set_expected;
  decltype(&bpf_program__set_autoload) set_autoload;
  decltype(&bpf_program__fd) fd;
  decltype(&libbpf_strerror) strerror;
  decltype(&libbpf_set_print) set_print;
  std::string error;  // why it could not be loaded, or ""
};

template <typename F>
bool sym(void* h, const char* name, F* out) {
  *out = reinterpret_cast<F>(dlsym(h, name));
  return *out != nullptr;
}

const Libbpf& libbpf() {
  static const Libbpf lib = [] {
    Libbpf l{};
    void* h = dlopen("libbpf.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
      const char* why = dlerror();
      l.error = std::string("libbpf, which opens BPF objects, cannot be loaded: ") +
                (why ? why : "libbpf.so.1 not found");
      return l;
    }
    if (!(sym(h, "bpf_object__open_file", &l.open_file) &&
          sym(h, "bpf_object__find_program_by_name", &l.find_program) &&
          sym(h, "bpf_object__next_program", &l.next_program) &&
          sym(h, "bpf_object__load", &l.load) && sym(h, "bpf_object__close", &l.close) &&
          sym(h, "bpf_program__name", &l.name) && sym(h, "bpf_program__section_name", &l.section) &&
          sym(h, "bpf_program__type", &l.type) &&
          sym(h, "bpf_program__expected_attach_type", &l.expected) &&
          sym(h, "bpf_program__set_expected_attach_type", &l.set_expected) &&
          sym(h, "bpf_program__set_autoload", &l.set_autoload) &&
          sym(h, "bpf_program__fd", &l.fd) && sym(h, "libbpf_strerror", &l.strerror) &&
          sym(h, "libbpf_set_print", &l.set_print)))
      l.error = "libbpf.so.1 lacks a function sockshim needs (libbpf 1.0 or later is)";
    return l;
  }();
  return lib;
}

// libbpf's messages while a file is opened or loaded: the last warning is
// the reason a load failed ("libbpf: prog 'x': BPF program load failed").
// Made on first use: the shim loads its policy from a constructor that runs
// before this file's static initialisers.
struct Messages {
  std::mutex lock;
  std::string last_warning;
};
Messages& messages() {
  static auto* m = new Messages;  // leaked: hooks run during exit
  return *m;
}

int collect(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level != LIBBPF_WARN) return 0;
  char line[512];
  vsnprintf(line, sizeof line, fmt, args);
  std::string s(line);
  while (!s.empty() && s.back() == '\n') s.pop_back();
  if (!s.empty()) messages().last_warning = std::move(s);
  return 0;
}

// Runs f with libbpf's messages collected (libbpf's print hook is global);
// *last: " (LAST WARNING)" or "".
template <typename F>
auto with_messages(const Libbpf& l, std::string* last, F f) {
  Messages& m = messages();
  std::lock_guard g(m.lock);
  m.last_warning.clear();
  libbpf_print_fn_t old = l.set_print(collect);
  auto r = f();
  l.set_print(old);
  *last = m.last_warning.empty() ? "" : " (" + m.last_warning + ")";
  return r;
}

std::string libbpf_error(const Libbpf& l, int err) {
  char buf[256];
  l.strerror(err, buf, sizeof buf);
  return buf;
}

// The policy type a program of the object is, by its section.
std::string describe(const Libbpf& l, bpf_program* p) {
  const char* sec = l.section(p);
  return "in section " + quoted(sec ? sec : "");
}

// Whether an object program of (type, expected attach type) can be the
// policy's t. A plain "sk_skb" section (no expected type) is any sk_skb role.
bool fits(ProgramType t, bpf_prog_type type, bpf_attach_type expected) {
  switch (t) {
    case ProgramType::sk_msg:
      return type == BPF_PROG_TYPE_SK_MSG;
    case ProgramType::sockops:
      return type == BPF_PROG_TYPE_SOCK_OPS;
    case ProgramType::stream_parser:
      return type == BPF_PROG_TYPE_SK_SKB &&
             (expected == 0 || expected == BPF_SK_SKB_STREAM_PARSER);
    case ProgramType::stream_verdict:
      return type == BPF_PROG_TYPE_SK_SKB &&
             (expected == 0 || expected == BPF_SK_SKB_STREAM_VERDICT);
    case ProgramType::skb_verdict:
      return type == BPF_PROG_TYPE_SK_SKB && (expected == 0 || expected == BPF_SK_SKB_VERDICT);
  }
  return false;
}

bpf_attach_type role(ProgramType t) {
  switch (t) {
    case ProgramType::stream_parser:
      return BPF_SK_SKB_STREAM_PARSER;
    case ProgramType::stream_verdict:
      return BPF_SK_SKB_STREAM_VERDICT;
    case ProgramType::skb_verdict:
      return BPF_SK_SKB_VERDICT;
    default:
      return static_cast<bpf_attach_type>(0);
  }
}

#endif

}  // namespace

#ifdef SOCKSHIM_LIBBPF_HEADERS

BpfObjectFile::~BpfObjectFile() {
  if (obj_) libbpf().close(obj_);
}

std::string BpfObjectFile::open(const std::string& path) {
  path_ = path;
  const Libbpf& l = libbpf();
  if (!l.error.empty()) return "BPF object " + quoted(path) + ": " + l.error;
  int err = 0;
  std::string last;
  obj_ = with_messages(l, &last, [&] {
    bpf_object* o = l.open_file(path.c_str(), nullptr);
    err = errno;
    return o;
  });
  if (obj_) return "";
  if (err == ENOENT || err == EACCES || err == EISDIR)
    return "cannot open BPF object " + quoted(path) + ": " + strerror(err);
  return "cannot open BPF object " + quoted(path) + ": " + libbpf_error(l, err) + last;
}

std::vector<std::string> BpfObjectFile::select(std::span<const ObjectProgramRef> refs) {
  const Libbpf& l = libbpf();
  std::vector<std::string> errors(refs.size());
  selected_.assign(refs.size(), nullptr);
  for (bpf_program* p = l.next_program(obj_, nullptr); p; p = l.next_program(obj_, p))
    l.set_autoload(p, false);
  for (size_t i = 0; i < refs.size(); ++i) {
    const ObjectProgramRef& r = refs[i];
    bpf_program* p = l.find_program(obj_, r.program.c_str());
    if (!p) {
      std::string names;
      for (bpf_program* q = l.next_program(obj_, nullptr); q; q = l.next_program(obj_, q))
        names += (names.empty() ? "" : ", ") + quoted(l.name(q));
      errors[i] = "no program " + quoted(r.program) + " in BPF object " + quoted(path_) + " (" +
                  (names.empty() ? "it has no programs" : "its programs: " + names) + ")";
      continue;
    }
    const bpf_prog_type type = l.type(p);
    const bpf_attach_type expected = l.expected(p);
    if (!fits(r.type, type, expected)) {
      errors[i] = "program " + quoted(r.program) + " in BPF object " + quoted(path_) + " is " +
                  describe(l, p) + ", which is not a " + program_type_name(r.type) + " program";
      continue;
    }
    // The role the policy gives a plain "sk_skb" program (the kernel keeps
    // an SK_SKB program's expected attach type as its loader set it).
    if (type == BPF_PROG_TYPE_SK_SKB && expected == 0) l.set_expected(p, role(r.type));
    l.set_autoload(p, true);
    selected_[i] = p;
  }
  return errors;
}

std::string BpfObjectFile::load() {
  const Libbpf& l = libbpf();
  std::string last;
  const int r = with_messages(l, &last, [&] { return l.load(obj_); });
  if (r == 0) return "";
  return "cannot load BPF object " + quoted(path_) + ": " + libbpf_error(l, -r) + last;
}

int BpfObjectFile::program_fd(size_t i) const {
  return selected_[i] ? libbpf().fd(selected_[i]) : -EINVAL;
}

#else  // no libbpf headers at build time

BpfObjectFile::~BpfObjectFile() = default;

std::string BpfObjectFile::open(const std::string& path) {
  return "BPF object " + quoted(path) + ": this sockshim was built without libbpf";
}
std::vector<std::string> BpfObjectFile::select(std::span<const ObjectProgramRef> refs) {
  return std::vector<std::string>(refs.size(), "not built with libbpf");
}
std::string BpfObjectFile::load() {
  return "not built with libbpf";
}
int BpfObjectFile::program_fd(size_t) const {
  return -EINVAL;
}

#endif

}  // namespace sockshim::policy
