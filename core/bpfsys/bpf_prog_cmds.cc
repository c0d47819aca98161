// BPF_PROG_LOAD, BPF_PROG_BIND_MAP and a program's info. SK_MSG, SK_SKB and
// SOCK_OPS programs become policy::Programs core runs once attached
// (policy::load_bytecode_program); the socket filters libbpf's feature probes
// load are checked (bpf::load_program) and kept, never run.
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <new>
#include <string>

#include "bpf/check.h"
#include "core/bpfsys/bpf_attr.h"
#include "core/bpfsys/bpf_cmds.h"
#include "core/maps/array_map.h"
#include "policy/bytecode_program.h"
#include "policy/policy.h"

namespace sockshim::bpfsys {

namespace {

// BPF_COMPLEXITY_LIMIT_INSNS: the most instructions a privileged load may have.
constexpr uint32_t kMaxInsns = 1000000;
// The prog_flags the kernel knows (BPF_F_STRICT_ALIGNMENT ... BPF_F_TOKEN_FD).
constexpr uint32_t kProgFlags = 0xff | (1u << 16);
// The longest license string the kernel reads.
constexpr size_t kLicenseLen = 128;

uint64_t clock_ns(clockid_t c) noexcept {
  timespec ts{};
  clock_gettime(c, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
}

// The helpers a loaded program may name here: the clocks libbpf's probes call
// (bpf_ktime_get_coarse_ns decides whether libbpf raises RLIMIT_MEMLOCK).
uint64_t ktime_get_ns(bpf::Vm&, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t) {
  return clock_ns(CLOCK_MONOTONIC);
}
uint64_t ktime_get_coarse_ns(bpf::Vm&, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t) {
  return clock_ns(CLOCK_MONOTONIC_COARSE);
}
uint64_t ktime_get_boot_ns(bpf::Vm&, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t) {
  return clock_ns(CLOCK_BOOTTIME);
}

const bpf::HelperTable& helpers() noexcept {
  static const bpf::HelperTable table = [] {
    bpf::HelperTable t;
    t.fn[BPF_FUNC_ktime_get_ns] = ktime_get_ns;
    t.fn[BPF_FUNC_ktime_get_coarse_ns] = ktime_get_coarse_ns;
    t.fn[BPF_FUNC_ktime_get_boot_ns] = ktime_get_boot_ns;
    return t;
  }();
  return table;
}

// The map an lddw names: by fd, or (BPF_PSEUDO_MAP_IDX*) by its index in
// attr.fd_array, -EPROTO without one (resolve_pseudo_ldimm64).
int ref_map(const bpf_attr& attr, uint8_t pseudo, int32_t imm, std::shared_ptr<MapObject>* out) {
  int fd = imm;
  if (pseudo == BPF_PSEUDO_MAP_IDX || pseudo == BPF_PSEUDO_MAP_IDX_VALUE) {
    const auto* fds = attr_ptr<const int32_t>(attr.fd_array);
    if (!fds) return -EPROTO;
    fd = fds[static_cast<uint32_t>(imm)];
  }
  return map_at(fd, out);
}

bool is_value_form(uint8_t pseudo) noexcept {
  return pseudo == BPF_PSEUDO_MAP_VALUE || pseudo == BPF_PSEUDO_MAP_IDX_VALUE;
}

// A map value reference (global data): the value's address, for arrays of
// one element only, as array_map_direct_value_addr allows.
int value_ref(MapObject& m, uint32_t off, bpf::MapRef* out) noexcept {
  auto* array =
      m.map->type() == policy::MapType::array ? static_cast<ArrayMap*>(m.map.get()) : nullptr;
  if (!array || array->max_entries() != 1 || off >= array->value_size()) return -EINVAL;
  out->value = reinterpret_cast<uintptr_t>(array->data() + off);
  out->region_start = reinterpret_cast<uintptr_t>(array->data());
  out->region_len = array->value_size();
  out->writable = !(m.map_flags & BPF_F_RDONLY_PROG);
  return 0;
}

// Records m among p's used maps (may throw: load_program runs resolvers under a try).
void use_map(ProgObject& p, std::shared_ptr<MapObject> m) {
  if (std::find(p.used_maps.begin(), p.used_maps.end(), m) == p.used_maps.end())
    p.used_maps.push_back(std::move(m));
}

// A socket filter's map references: the map's address as its handle (the
// program never runs), or a value's.
int resolve_probe_map(const bpf_attr& attr, ProgObject& p, uint8_t pseudo, int32_t imm,
                      uint32_t off, bpf::MapRef* out) {
  std::shared_ptr<MapObject> m;
  if (int r = ref_map(attr, pseudo, imm, &m)) return r;
  if (is_value_form(pseudo)) {
    if (int r = value_ref(*m, off, out)) return r;
  } else {
    out->value = reinterpret_cast<uintptr_t>(m->map.get());
  }
  use_map(p, std::move(m));
  return 0;
}

// A program core runs: a map handle is the map's index in
// owner->map_by_index, the numbering the program's SockHelpers use.
int resolve_map(const bpf_attr& attr, ProgObject& p, uint8_t pseudo, int32_t imm, uint32_t off,
                bpf::MapRef* out) {
  std::shared_ptr<MapObject> m;
  if (int r = ref_map(attr, pseudo, imm, &m)) return r;
  if (is_value_form(pseudo)) {
    if (int r = value_ref(*m, off, out)) return r;
  } else {
    LoadedPolicy& lp = *p.owner;
    auto it = std::find(lp.map_by_index.begin(), lp.map_by_index.end(), m->map.get());
    out->value = static_cast<uint64_t>(it - lp.map_by_index.begin());
    if (it == lp.map_by_index.end()) {
      lp.map_by_index.push_back(m->map.get());
      lp.held_maps.push_back(m->map);
    }
  }
  use_map(p, std::move(m));
  return 0;
}

// The policy type a program runs as. An SK_SKB program's role is its
// expected_attach_type; libbpf leaves that 0 when its probe for expected
// attach types fails, and then it shows as a stream verdict (core runs a
// program by the slot it is attached to, whatever its type).
policy::ProgramType policy_type(uint32_t prog_type, uint32_t expected) noexcept {
  switch (prog_type) {
    case BPF_PROG_TYPE_SK_MSG:
      return policy::ProgramType::sk_msg;
    case BPF_PROG_TYPE_SOCK_OPS:
      return policy::ProgramType::sockops;
    default:
      return expected == BPF_SK_SKB_STREAM_PARSER ? policy::ProgramType::stream_parser
             : expected == BPF_SK_SKB_VERDICT     ? policy::ProgramType::skb_verdict
                                                  : policy::ProgramType::stream_verdict;
  }
}

// Loads insns as the program core runs (p.owner, p.program).
int load_core_program(const bpf_attr& attr, ProgObject& p, bpf::InsnSpan insns, std::string* log) {
  p.owner = std::make_shared<LoadedPolicy>();
  p.owner->path = "bpf()";
  p.owner->policy = std::make_unique<policy::Policy>();
  auto resolve = [&](uint8_t pseudo, int32_t imm, uint32_t off, bpf::MapRef* out) {
    return resolve_map(attr, p, pseudo, imm, off, out);
  };
  std::string name = p.name[0] ? p.name : "bpf_prog_" + std::to_string(p.id);
  std::unique_ptr<policy::Program> prog;
  if (int r = policy::load_bytecode_program(std::move(name),
                                            policy_type(attr.prog_type, attr.expected_attach_type),
                                            insns, resolve, &prog, log))
    return r;
  p.program = prog.get();
  p.owner->policy->programs.push_back(std::move(prog));
  return 0;
}

// The verifier log, as much as fits, NUL-terminated (log_level set).
void write_log(const bpf_attr& attr, const std::string& log) noexcept {
  char* buf = attr_ptr<char>(attr.log_buf);
  if (!attr.log_level || !buf || !attr.log_size) return;
  size_t n = std::min<size_t>(log.size(), attr.log_size - 1);
  std::memcpy(buf, log.data(), n);
  buf[n] = '\0';
}

}  // namespace

bool is_core_type(uint32_t prog_type) noexcept {
  return prog_type == BPF_PROG_TYPE_SK_MSG || prog_type == BPF_PROG_TYPE_SK_SKB ||
         prog_type == BPF_PROG_TYPE_SOCK_OPS;
}

int cmd_prog_load(const bpf_attr& attr) noexcept {
  if (attr_tail_nonzero(attr, SOCKSHIM_ATTR_END(core_relo_rec_size))) return -EINVAL;
  if (attr.prog_flags & ~kProgFlags) return -EINVAL;
  if (attr.insn_cnt == 0 || attr.insn_cnt > kMaxInsns) return -E2BIG;
  // Other types are refused as from an unprivileged caller.
  if (attr.prog_type != BPF_PROG_TYPE_SOCKET_FILTER && !is_core_type(attr.prog_type)) return -EPERM;
  if (attr.attach_btf_id || attr.attach_prog_fd) return -EINVAL;
  const auto* insns = attr_ptr<const bpf_insn>(attr.insns);
  const char* license = attr_ptr<const char>(attr.license);
  if (!insns || !license) return -EFAULT;
  if (strnlen(license, kLicenseLen) == kLicenseLen) return -EFAULT;  // strncpy_from_user: too long
  char name[BPF_OBJ_NAME_LEN];
  if (int r = obj_name_cpy(name, attr.prog_name)) return r;
  auto p = std::shared_ptr<ProgObject>(
      new (std::nothrow) ProgObject(name, attr.prog_type, attr.expected_attach_type));
  if (!p) return -ENOMEM;
  const bpf::InsnSpan span(insns, attr.insn_cnt);
  std::string log;
  int r;
  try {
    if (is_core_type(attr.prog_type)) {
      r = load_core_program(attr, *p, span, &log);
    } else {
      bpf::LoadOptions opts;
      // A socket filter's context is a __sk_buff, checked with the sk_skb layout.
      opts.type = bpf::ProgType::sk_skb;
      opts.helpers = &helpers();
      opts.resolve_map = [&](uint8_t pseudo, int32_t imm, uint32_t off, bpf::MapRef* out) {
        return resolve_probe_map(attr, *p, pseudo, imm, off, out);
      };
      r = bpf::load_program(span, opts, &p->prog, &log);
    }
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  write_log(attr, log);
  if (r) return r;
  int fd = new_object_fd();
  if (fd < 0) return fd;
  if (int err = install(fd, std::move(p))) {
    close_object_fd(fd);
    return err;
  }
  return fd;
}

// bpf_prog_test_run: the kernel's SK_MSG, SK_SKB and SOCK_OPS have no
// test_run (their bpf_prog_ops are empty): ENOTSUPP after the attr checks.
// Socket filters have one in the kernel but are never run here: EPERM, as a
// command not emulated.
int cmd_prog_test_run(const bpf_attr& attr) noexcept {
  if (attr_tail_nonzero(attr, SOCKSHIM_ATTR_END(test.batch_size))) return -EINVAL;
  if (!attr.test.ctx_size_in != !attr.test.ctx_in) return -EINVAL;
  if (!attr.test.ctx_size_out != !attr.test.ctx_out) return -EINVAL;
  std::shared_ptr<ProgObject> p;
  if (int r = prog_at(static_cast<int>(attr.test.prog_fd), &p)) return r;
  return p->prog_type == BPF_PROG_TYPE_SOCKET_FILTER ? -EPERM : -ENOTSUPP_KERNEL;
}

int cmd_prog_bind_map(const bpf_attr& attr) noexcept {
  if (attr_tail_nonzero(attr, SOCKSHIM_ATTR_END(prog_bind_map.flags))) return -EINVAL;
  if (attr.prog_bind_map.flags) return -EINVAL;
  std::shared_ptr<ProgObject> p;
  if (int r = prog_at(static_cast<int>(attr.prog_bind_map.prog_fd), &p)) return r;
  std::shared_ptr<MapObject> m;
  if (int r = map_at(static_cast<int>(attr.prog_bind_map.map_fd), &m)) return r;
  std::lock_guard g(p->maps_lock);
  if (std::find(p->used_maps.begin(), p->used_maps.end(), m) != p->used_maps.end()) return 0;
  try {
    p->used_maps.push_back(std::move(m));
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  return 0;
}

int prog_get_info(ProgObject& p, const bpf_attr& attr, bpf_attr* uattr) noexcept {
  auto* uinfo = attr_ptr<bpf_prog_info>(attr.info.info);
  uint32_t info_len = attr.info.info_len;
  if (int r = check_uarg_tail_zero(uinfo, sizeof(bpf_prog_info), info_len)) return r;
  info_len = std::min<uint32_t>(sizeof(bpf_prog_info), info_len);
  bpf_prog_info given{};
  if (info_len) std::memcpy(&given, uinfo, info_len);  // the caller's map_ids array and its room
  uint32_t room = given.nr_map_ids;
  auto* ids = attr_ptr<uint32_t>(given.map_ids);
  bpf_prog_info info{};
  info.map_ids = given.map_ids;
  std::lock_guard g(p.maps_lock);
  info.nr_map_ids = static_cast<uint32_t>(p.used_maps.size());
  if (room && ids)
    for (uint32_t i = 0; i < std::min(room, info.nr_map_ids); ++i) ids[i] = p.used_maps[i]->id;
  info.type = p.prog_type;
  info.id = p.id;
  info.created_by_uid = getuid();
  std::memcpy(info.name, p.name, sizeof info.name);
  if (info_len) std::memcpy(uinfo, &info, info_len);
  uattr->info.info_len = info_len;
  return 0;
}

}  // namespace sockshim::bpfsys
