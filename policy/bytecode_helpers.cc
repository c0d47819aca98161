// The kernel helpers bytecode programs call, over policy::Helpers (the
// current socket and its maps) and SkMsg (the message), with the argument
// checks, return values and errnos of net/core/filter.c, net/core/sock_map.c,
// net/core/bpf_sk_storage.c and kernel/bpf/helpers.c. Where the kernel's
// verifier would have refused the program (a map of the wrong type for the
// helper, memory the program may not pass) the helper faults instead: the run
// stops and returns SK_DROP.
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "bpf/vm.h"
#include "policy/bytecode_run.h"

namespace sockshim::policy {
namespace {

using bpf::Vm;

BytecodeRun& run_of(Vm& vm) {
  return *static_cast<BytecodeRun*>(vm.user());
}

// A helper's map argument: a map the program referenced (lddw) and Helpers
// knows. Faults and returns nullptr otherwise, or when the run has no Helpers.
const MapSpec* map_arg(Vm& vm, uint64_t handle, uint32_t* index) {
  BytecodeRun& run = run_of(vm);
  const MapSpec* spec = nullptr;
  if (run.helpers && (handle & ~uint64_t{UINT32_MAX}) == kMapHandleTag && vm.uses_map(handle)) {
    *index = static_cast<uint32_t>(handle);
    spec = run.helpers->map_spec(*index);
  }
  if (!spec) vm.fault();
  return spec;
}

// A map argument of the one type the helper takes (the verifier's
// check_map_func_compatibility).
const MapSpec* typed_map_arg(Vm& vm, uint64_t handle, MapType type, uint32_t* index) {
  const MapSpec* spec = map_arg(vm, handle, index);
  if (spec && spec->type != type) {
    vm.fault();
    return nullptr;
  }
  return spec;
}

bool is_sock_map(const MapSpec& spec) {
  return spec.type == MapType::sockmap || spec.type == MapType::sockhash;
}

// Program memory the helper reads (write false) or fills; faults when the
// program may not touch it.
uint8_t* arg_mem(Vm& vm, uint64_t addr, uint64_t len, bool write) {
  uint8_t* p = vm.mem(addr, len, write);
  if (!p) vm.fault();
  return p;
}

// The context argument (ARG_PTR_TO_CTX).
bool ctx_arg(Vm& vm, uint64_t v) {
  if (vm.is_ctx(v)) return true;
  vm.fault();
  return false;
}

uint64_t ret(long v) {
  return static_cast<uint64_t>(static_cast<int64_t>(v));
}

// --- maps ---

bool is_value_map(const MapSpec& spec) {
  return spec.type == MapType::array || spec.type == MapType::hash;
}

// BPF_F_RDONLY_PROG: the verifier refuses a program's writes to the map.
bool prog_writable(const MapSpec& spec) {
  return !(spec.flags & BPF_F_RDONLY_PROG);
}

// ARRAY and HASH: the value in place, a region of the run (writable unless
// BPF_F_RDONLY_PROG), or NULL. A sockmap or sockhash lookup returns a
// referenced socket in the kernel, which the program must release with
// bpf_sk_release, a helper none of these program types may call; sk_storage
// maps take only the sk_storage helpers: those runs fault.
uint64_t map_lookup_elem(Vm& vm, uint64_t map, uint64_t key, uint64_t, uint64_t, uint64_t) {
  uint32_t index;
  const MapSpec* spec = map_arg(vm, map, &index);
  if (!spec) return 0;
  if (!is_value_map(*spec)) {
    vm.fault();
    return 0;
  }
  const uint8_t* k = arg_mem(vm, key, spec->key_size, false);
  if (!k) return 0;
  uint8_t* v = run_of(vm).helpers->map_lookup(index, {k, spec->key_size});
  if (!v) return 0;
  if (!vm.add_region(v, spec->value_size, prog_writable(*spec))) {
    vm.fault();
    return 0;
  }
  return reinterpret_cast<uint64_t>(v);
}

// ARRAY and HASH, with the maps' flag checks. The verifier's
// may_update_sockmap lets none of these program types update a sock map
// with it (sockops has bpf_sock_map_update and bpf_sock_hash_update).
uint64_t map_update_elem(Vm& vm, uint64_t map, uint64_t key, uint64_t value, uint64_t flags,
                         uint64_t) {
  uint32_t index;
  const MapSpec* spec = map_arg(vm, map, &index);
  if (!spec) return 0;
  if (!is_value_map(*spec) || !prog_writable(*spec)) {
    vm.fault();
    return 0;
  }
  const uint8_t* k = arg_mem(vm, key, spec->key_size, false);
  const uint8_t* v = k ? arg_mem(vm, value, spec->value_size, false) : nullptr;
  if (!v) return 0;
  return ret(run_of(vm).helpers->map_update_value(index, {k, spec->key_size}, v, flags));
}

// Sock maps from sockops only (may_update_sockmap), ARRAY (-EINVAL) and HASH.
uint64_t map_delete_elem(Vm& vm, uint64_t map, uint64_t key, uint64_t, uint64_t, uint64_t) {
  uint32_t index;
  const MapSpec* spec = map_arg(vm, map, &index);
  if (!spec) return 0;
  const bool okay =
      is_sock_map(*spec) ? run_of(vm).ops != nullptr : is_value_map(*spec) && prog_writable(*spec);
  if (!okay) {
    vm.fault();
    return 0;
  }
  const uint8_t* k = arg_mem(vm, key, spec->key_size, false);
  if (!k) return 0;
  return ret(run_of(vm).helpers->map_delete(index, {k, spec->key_size}));
}

// bpf_sock_map_update / bpf_sock_hash_update: only in sock_map_op_okay() ops,
// -EOPNOTSUPP in the others.
uint64_t sock_update(Vm& vm, uint64_t ops, uint64_t map, uint64_t key, uint64_t flags,
                     MapType type) {
  uint32_t index;
  const MapSpec* spec = typed_map_arg(vm, map, type, &index);
  if (!spec || !ctx_arg(vm, ops)) return 0;
  const uint8_t* k = arg_mem(vm, key, spec->key_size, false);
  if (!k) return 0;
  BytecodeRun& run = run_of(vm);
  if (!sock_map_op_okay(static_cast<SockOp>(run.ops->op))) return ret(-EOPNOTSUPP);
  return ret(run.helpers->map_update(index, {k, spec->key_size}, flags));
}

uint64_t sock_map_update(Vm& vm, uint64_t ops, uint64_t map, uint64_t key, uint64_t flags,
                         uint64_t) {
  return sock_update(vm, ops, map, key, flags, MapType::sockmap);
}

uint64_t sock_hash_update(Vm& vm, uint64_t ops, uint64_t map, uint64_t key, uint64_t flags,
                          uint64_t) {
  return sock_update(vm, ops, map, key, flags, MapType::sockhash);
}

// --- redirects: SK_PASS with the target recorded, SK_DROP for a flag other
// than BPF_F_INGRESS (before any lookup), a missing key or a target the
// kernel refuses ---

uint64_t redirect(Vm& vm, uint64_t ctx, uint32_t index, std::span<const uint8_t> key,
                  uint64_t flags) {
  BytecodeRun& run = run_of(vm);
  if (!ctx_arg(vm, ctx)) return 0;
  if (flags & ~BPF_F_INGRESS) return SK_DROP;
  const int r = run.helpers->redirect(index, key, flags);
  run.redirected = r == SK_PASS;
  return static_cast<uint64_t>(r);
}

// The _map forms take the u32 key by value.
uint64_t redirect_map(Vm& vm, uint64_t ctx, uint64_t map, uint64_t key, uint64_t flags, uint64_t) {
  uint32_t index;
  if (!typed_map_arg(vm, map, MapType::sockmap, &index)) return 0;
  const auto k = static_cast<uint32_t>(key);
  uint8_t bytes[4];
  memcpy(bytes, &k, 4);
  return redirect(vm, ctx, index, bytes, flags);
}

// The _hash forms take a pointer to the key.
uint64_t redirect_hash(Vm& vm, uint64_t ctx, uint64_t map, uint64_t key, uint64_t flags, uint64_t) {
  uint32_t index;
  const MapSpec* spec = typed_map_arg(vm, map, MapType::sockhash, &index);
  if (!spec) return 0;
  const uint8_t* k = arg_mem(vm, key, spec->key_size, false);
  if (!k) return 0;
  return redirect(vm, ctx, index, {k, spec->key_size}, flags);
}

// --- sk_msg data ---

// After push and pop the message may have moved and changed size: the
// window, the packet region and md->size follow (sk_msg_compute_data_pointers).
uint64_t msg_changed(Vm& vm, int r) {
  BytecodeRun& run = run_of(vm);
  uint64_t data, data_end;
  msg_window(*run.msg, &data, &data_end);
  vm.set_packet(data, data_end);
  run.md->size = run.msg->size();
  return ret(r);
}

uint64_t msg_apply_bytes(Vm& vm, uint64_t msg, uint64_t bytes, uint64_t, uint64_t, uint64_t) {
  if (!ctx_arg(vm, msg)) return 0;
  return ret(run_of(vm).msg->apply_bytes(static_cast<uint32_t>(bytes)));
}

uint64_t msg_cork_bytes(Vm& vm, uint64_t msg, uint64_t bytes, uint64_t, uint64_t, uint64_t) {
  if (!ctx_arg(vm, msg)) return 0;
  return ret(run_of(vm).msg->cork_bytes(static_cast<uint32_t>(bytes)));
}

uint64_t msg_pull_data(Vm& vm, uint64_t msg, uint64_t start, uint64_t end, uint64_t flags,
                       uint64_t) {
  if (!ctx_arg(vm, msg)) return 0;
  return msg_changed(vm, run_of(vm).msg->pull_data(static_cast<uint32_t>(start),
                                                   static_cast<uint32_t>(end), flags));
}

uint64_t msg_push_data(Vm& vm, uint64_t msg, uint64_t start, uint64_t len, uint64_t flags,
                       uint64_t) {
  if (!ctx_arg(vm, msg)) return 0;
  return msg_changed(vm, run_of(vm).msg->push_data(static_cast<uint32_t>(start),
                                                   static_cast<uint32_t>(len), flags));
}

uint64_t msg_pop_data(Vm& vm, uint64_t msg, uint64_t start, uint64_t len, uint64_t flags,
                      uint64_t) {
  if (!ctx_arg(vm, msg)) return 0;
  return msg_changed(vm, run_of(vm).msg->pop_data(static_cast<uint32_t>(start),
                                                  static_cast<uint32_t>(len), flags));
}

// --- sk_skb data: the frame is linear, so pulling only checks the length ---

// sk_skb_pull_data: skb_ensure_writable's -ENOMEM past the end.
uint64_t skb_pull_data(Vm& vm, uint64_t skb, uint64_t len, uint64_t, uint64_t, uint64_t) {
  if (!ctx_arg(vm, skb)) return 0;
  return static_cast<uint32_t>(len) > run_of(vm).skb_len ? ret(-ENOMEM) : 0;
}

// bpf_skb_load_bytes: -EFAULT, with the buffer zeroed, for bytes outside the
// frame.
uint64_t skb_load_bytes(Vm& vm, uint64_t skb, uint64_t off, uint64_t to, uint64_t len, uint64_t) {
  if (!ctx_arg(vm, skb)) return 0;
  const auto n = static_cast<uint32_t>(len);
  uint8_t* dst = arg_mem(vm, to, n, true);
  if (!dst) return 0;
  const auto o = static_cast<uint32_t>(off);
  const bpf::RunInput& in = vm.input();
  const uint64_t data = in.ctx_ptrs[bpf::kSlotData];
  if (o > INT32_MAX || uint64_t{o} + n > run_of(vm).skb_len) {
    memset(dst, 0, n);
    return ret(-EFAULT);
  }
  memmove(dst, reinterpret_cast<const uint8_t*>(data) + o, n);
  return 0;
}

// --- sk_storage: only the current socket's (ctx->sk) ---

uint64_t sk_storage_get(Vm& vm, uint64_t map, uint64_t sk, uint64_t value, uint64_t flags,
                        uint64_t) {
  uint32_t index;
  const MapSpec* spec = typed_map_arg(vm, map, MapType::sk_storage, &index);
  if (!spec) return 0;
  BytecodeRun& run = run_of(vm);
  if (sk != run.sk_token() || flags > BPF_SK_STORAGE_GET_F_CREATE) return 0;
  const uint8_t* init = value ? arg_mem(vm, value, spec->value_size, false) : nullptr;
  if (value && !init) return 0;
  uint8_t* p = run.helpers->storage_get(index, false);
  if (!p && flags == BPF_SK_STORAGE_GET_F_CREATE) {
    p = run.helpers->storage_get(index, true);
    if (p && init) memcpy(p, init, spec->value_size);
  }
  if (!p) return 0;
  if (!vm.add_region(p, spec->value_size, true)) {
    vm.fault();
    return 0;
  }
  return reinterpret_cast<uint64_t>(p);
}

uint64_t sk_storage_delete(Vm& vm, uint64_t map, uint64_t sk, uint64_t, uint64_t, uint64_t) {
  uint32_t index;
  if (!typed_map_arg(vm, map, MapType::sk_storage, &index)) return 0;
  BytecodeRun& run = run_of(vm);
  if (sk != run.sk_token()) return ret(-EINVAL);
  return ret(run.helpers->storage_delete(index));
}

// --- the socket, the task, time ---

uint64_t get_socket_cookie(Vm& vm, uint64_t ctx, uint64_t, uint64_t, uint64_t, uint64_t) {
  if (!ctx_arg(vm, ctx)) return 0;
  BytecodeRun& run = run_of(vm);
  if (!run.helpers) {
    vm.fault();
    return 0;
  }
  return run.helpers->socket_cookie();
}

uint64_t get_current_pid_tgid(Vm&, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t) {
  return (static_cast<uint64_t>(getpid()) << 32) | static_cast<uint32_t>(syscall(SYS_gettid));
}

uint64_t clock_ns(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t ktime_get_ns(Vm&, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t) {
  return clock_ns(CLOCK_MONOTONIC);
}

uint64_t ktime_get_coarse_ns(Vm&, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t) {
  return clock_ns(CLOCK_MONOTONIC_COARSE);
}

uint64_t get_prandom_u32(Vm&, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t) {
  thread_local std::minstd_rand rng{std::random_device{}()};
  return static_cast<uint32_t>(rng());
}

// bpf_sock_ops_cb_flags_set: keeps the flags the kernel knows in the
// context's bpf_sock_ops_cb_flags and returns the ones it does not. No
// callback those flags enable is emitted (bpf/README.md).
uint64_t sock_ops_cb_flags_set(Vm& vm, uint64_t ops, uint64_t flags, uint64_t, uint64_t, uint64_t) {
  if (!ctx_arg(vm, ops)) return 0;
  const auto v = static_cast<int32_t>(flags);
  run_of(vm).ops->bpf_sock_ops_cb_flags = static_cast<uint32_t>(v & BPF_SOCK_OPS_ALL_CB_FLAGS);
  return ret(v & ~BPF_SOCK_OPS_ALL_CB_FLAGS);
}

// --- bpf_trace_printk ---

inline constexpr size_t kMaxPrintk = 1024;  // MAX_BPRINTF_BUF

// A %s argument: the NUL-terminated string at addr in program memory, empty
// when it cannot be read (the kernel's nofault copy).
std::string printk_string(Vm& vm, uint64_t addr) {
  std::string s;
  for (; s.size() < kMaxPrintk; ++addr) {
    const uint8_t* p = vm.mem(addr, 1, false);
    if (!p || *p == 0) break;
    s.push_back(static_cast<char>(*p));
  }
  return s;
}

// bpf_bprintf_prepare's format rules: up to 3 arguments; %d %i %u %x %X %c
// %s %p %px %pK %% with optional [0 +-] flags, a width and l / ll; -EINVAL
// for anything else. Appends the text to *out.
int printk_format(Vm& vm, const char* fmt, const uint64_t* args, std::string* out) {
  int nargs = 0;
  char piece[kMaxPrintk];
  for (const char* f = fmt; *f; ++f) {
    if (*f != '%') {
      out->push_back(*f);
      continue;
    }
    if (f[1] == '%') {
      out->push_back('%');
      ++f;
      continue;
    }
    std::string spec = "%";
    ++f;
    while (*f == '0' || *f == '+' || *f == '-' || *f == ' ') spec.push_back(*f++);
    while (isdigit(static_cast<unsigned char>(*f))) spec.push_back(*f++);
    int longs = 0;
    while (*f == 'l' && longs < 2) {
      ++longs;
      ++f;
    }
    if (nargs == 3) return -EINVAL;
    const uint64_t a = args[nargs++];
    const char c = *f;
    if (c == 'p') {
      if (longs) return -EINVAL;
      if (f[1] == 'x' || f[1] == 'K') ++f;
      snprintf(piece, sizeof piece, "0x%llx", static_cast<unsigned long long>(a));
    } else if (c == 's' || c == 'c') {
      if (longs) return -EINVAL;
      spec.push_back(c);
      if (c == 's')
        snprintf(piece, sizeof piece, spec.c_str(), printk_string(vm, a).c_str());
      else
        snprintf(piece, sizeof piece, spec.c_str(), static_cast<int>(static_cast<char>(a)));
    } else if (c == 'd' || c == 'i' || c == 'u' || c == 'x' || c == 'X') {
      spec += "ll";
      spec.push_back(c);
      const bool is_signed = c == 'd' || c == 'i';
      // Without l the argument is an int: its low 32 bits.
      uint64_t v = a;
      if (longs == 0) v = is_signed ? static_cast<uint64_t>(static_cast<int32_t>(a)) : uint32_t(a);
      snprintf(piece, sizeof piece, spec.c_str(), static_cast<unsigned long long>(v));
    } else {
      return -EINVAL;
    }
    *out += piece;
  }
  return 0;
}

// Returns the length of the line, or -EINVAL for a format the kernel refuses
// (not NUL-terminated within fmt_size, a bad conversion, more than 3 args).
uint64_t trace_printk(Vm& vm, uint64_t fmt, uint64_t fmt_size, uint64_t a1, uint64_t a2,
                      uint64_t a3) {
  const auto n = static_cast<uint32_t>(fmt_size);
  const uint8_t* f = arg_mem(vm, fmt, n, false);
  if (!f) return 0;
  if (f[n - 1] != 0) return ret(-EINVAL);
  const uint64_t args[3] = {a1, a2, a3};
  std::string line;
  if (printk_format(vm, reinterpret_cast<const char*>(f), args, &line) < 0) return ret(-EINVAL);
  if (line.size() > kMaxPrintk - 1) line.resize(kMaxPrintk - 1);
  const uint64_t len = line.size();
  while (!line.empty() && line.back() == '\n') line.pop_back();
  BytecodeRun& run = run_of(vm);
  if (run.helpers) run.helpers->log(*run.prog, line);
  return len;
}

}  // namespace

const bpf::HelperTable& bytecode_helpers() noexcept {
  static const bpf::HelperTable table = [] {
    bpf::HelperTable t;
    t.fn[BPF_FUNC_map_lookup_elem] = map_lookup_elem;
    t.fn[BPF_FUNC_map_update_elem] = map_update_elem;
    t.fn[BPF_FUNC_map_delete_elem] = map_delete_elem;
    t.fn[BPF_FUNC_sock_map_update] = sock_map_update;
    t.fn[BPF_FUNC_sock_hash_update] = sock_hash_update;
    t.fn[BPF_FUNC_msg_redirect_map] = redirect_map;
    t.fn[BPF_FUNC_msg_redirect_hash] = redirect_hash;
    t.fn[BPF_FUNC_sk_redirect_map] = redirect_map;
    t.fn[BPF_FUNC_sk_redirect_hash] = redirect_hash;
    t.fn[BPF_FUNC_msg_apply_bytes] = msg_apply_bytes;
    t.fn[BPF_FUNC_msg_cork_bytes] = msg_cork_bytes;
    t.fn[BPF_FUNC_msg_pull_data] = msg_pull_data;
    t.fn[BPF_FUNC_msg_push_data] = msg_push_data;
    t.fn[BPF_FUNC_msg_pop_data] = msg_pop_data;
    t.fn[BPF_FUNC_skb_pull_data] = skb_pull_data;
    t.fn[BPF_FUNC_skb_load_bytes] = skb_load_bytes;
    t.fn[BPF_FUNC_skb_store_bytes] = skb_store_bytes;
    t.fn[BPF_FUNC_sk_storage_get] = sk_storage_get;
    t.fn[BPF_FUNC_sk_storage_delete] = sk_storage_delete;
    t.fn[BPF_FUNC_get_socket_cookie] = get_socket_cookie;
    t.fn[BPF_FUNC_get_current_pid_tgid] = get_current_pid_tgid;
    t.fn[BPF_FUNC_ktime_get_ns] = ktime_get_ns;
    t.fn[BPF_FUNC_ktime_get_coarse_ns] = ktime_get_coarse_ns;
    t.fn[BPF_FUNC_get_prandom_u32] = get_prandom_u32;
    t.fn[BPF_FUNC_trace_printk] = trace_printk;
    t.fn[BPF_FUNC_sock_ops_cb_flags_set] = sock_ops_cb_flags_set;
    return t;
  }();
  return table;
}

}  // namespace sockshim::policy
