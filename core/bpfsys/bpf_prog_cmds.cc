// BPF_PROG_LOAD of the programs libbpf's feature probes load, BPF_PROG_BIND_MAP
// and a program's info. The programs are checked (bpf::load_program) and kept,
// not run: running and attaching programs come with the program backend.
#include <errno.h>
#include <sys/epoll.h>
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
#include "core/sock/errno_saver.h"
#include "core/sock/real.h"

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

// lddw map references: the map's object for BPF_PSEUDO_MAP_FD, a value's
// address for BPF_PSEUDO_MAP_VALUE (arrays of one element, as
// array_map_direct_value_addr allows). The index forms need fd_array: EINVAL.
int resolve_map(ProgObject& p, uint8_t pseudo, int32_t fd, uint32_t off, bpf::MapRef* out) {
  if (pseudo != BPF_PSEUDO_MAP_FD && pseudo != BPF_PSEUDO_MAP_VALUE) return -EINVAL;
  std::shared_ptr<MapObject> m;
  if (int r = map_at(fd, &m)) return r;
  if (pseudo == BPF_PSEUDO_MAP_FD) {
    out->value = reinterpret_cast<uintptr_t>(m->map.get());
  } else {
    auto* array =
        m->map->type() == policy::MapType::array ? static_cast<ArrayMap*>(m->map.get()) : nullptr;
    if (!array || array->max_entries() != 1 || off >= array->value_size()) return -EINVAL;
    out->value = reinterpret_cast<uintptr_t>(array->data() + off);
    out->region_start = reinterpret_cast<uintptr_t>(array->data());
    out->region_len = array->value_size();
    out->writable = !(m->map_flags & BPF_F_RDONLY_PROG);
  }
  if (std::find(p.used_maps.begin(), p.used_maps.end(), m) == p.used_maps.end())
    p.used_maps.push_back(std::move(m));  // may throw: load_program runs it under a try
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

int new_prog_fd() noexcept {
  ErrnoSaver saved;
  int fd = real::epoll_create1(EPOLL_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

}  // namespace

int cmd_prog_load(const bpf_attr& attr) noexcept {
  if (attr_tail_nonzero(attr, SOCKSHIM_ATTR_END(core_relo_rec_size))) return -EINVAL;
  if (attr.prog_flags & ~kProgFlags) return -EINVAL;
  if (attr.insn_cnt == 0 || attr.insn_cnt > kMaxInsns) return -E2BIG;
  // Socket filters are what libbpf's probes load; other types are refused as
  // from an unprivileged caller until the program backend runs them.
  if (attr.prog_type != BPF_PROG_TYPE_SOCKET_FILTER) return -EPERM;
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
  bpf::LoadOptions opts;
  // A socket filter's context is a __sk_buff, checked with the sk_skb layout.
  opts.type = bpf::ProgType::sk_skb;
  opts.helpers = &helpers();
  opts.resolve_map = [&](uint8_t pseudo, int32_t fd, uint32_t off, bpf::MapRef* out) {
    return resolve_map(*p, pseudo, fd, off, out);
  };
  std::string log;
  int r;
  try {
    r = bpf::load_program(bpf::InsnSpan(insns, attr.insn_cnt), opts, &p->prog, &log);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  write_log(attr, log);
  if (r) return r;
  int fd = new_prog_fd();
  if (fd < 0) return fd;
  if (int err = install(fd, std::move(p))) {
    ErrnoSaver saved;
    real::close(fd);
    return err;
  }
  return fd;
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
