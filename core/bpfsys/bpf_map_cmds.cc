// BPF_MAP_CREATE, the elem commands, BPF_MAP_FREEZE and a map's info.
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <new>
#include <vector>

#include "core/bpfsys/bpf_attr.h"
#include "core/bpfsys/bpf_cmds.h"
#include "core/maps/array_map.h"
#include "core/maps/bpf_syscall.h"
#include "core/maps/map_create.h"
#include "core/sock/errno_saver.h"
#include "core/sock/real.h"

namespace sockshim::bpfsys {

namespace {

// The map types of the 6.18 kernel end below this (BPF_MAP_TYPE_ARENA is 33):
// a larger number is one no kernel knows (EINVAL), a smaller one that is not
// emulated is refused as from an unprivileged caller (EPERM).
constexpr uint32_t kKernelMapTypes = 34;

bool emulated_type(uint32_t t, policy::MapType* out) noexcept {
  switch (t) {
    case BPF_MAP_TYPE_SOCKMAP:
      *out = policy::MapType::sockmap;
      return true;
    case BPF_MAP_TYPE_SOCKHASH:
      *out = policy::MapType::sockhash;
      return true;
    case BPF_MAP_TYPE_SK_STORAGE:
      *out = policy::MapType::sk_storage;
      return true;
    case BPF_MAP_TYPE_ARRAY:
      *out = policy::MapType::array;
      return true;
    case BPF_MAP_TYPE_HASH:
      *out = policy::MapType::hash;
      return true;
    default:
      return false;
  }
}

// A map's fd: the memfd its values live in when it is mmapable, else an
// epoll instance (cheap, and read, write and mmap fail on it, as on a map).
int new_map_fd(bool mmapable) noexcept {
  ErrnoSaver saved;
  int fd = mmapable ? memfd_create("bpf-map", MFD_CLOEXEC | MFD_ALLOW_SEALING)
                    : real::epoll_create1(EPOLL_CLOEXEC);
  return fd >= 0 ? fd : -errno;
}

void close_fd(int fd) noexcept {
  ErrnoSaver saved;
  real::close(fd);
}

// Map commands name their map by attr.map_fd.
int elem_map(const bpf_attr& attr, std::shared_ptr<MapObject>* out) noexcept {
  return map_at(static_cast<int>(attr.map_fd), out);
}

}  // namespace

int obj_name_cpy(char (&dst)[BPF_OBJ_NAME_LEN], const char (&src)[BPF_OBJ_NAME_LEN]) noexcept {
  std::memset(dst, 0, sizeof dst);
  for (size_t i = 0; i < BPF_OBJ_NAME_LEN; ++i) {
    char c = src[i];
    if (!c) return 0;
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.') return -EINVAL;
    dst[i] = c;
  }
  return -EINVAL;  // no NUL within BPF_OBJ_NAME_LEN
}

int cmd_map_create(const bpf_attr& attr) noexcept {
  if (attr_tail_nonzero(attr, SOCKSHIM_ATTR_END(map_extra))) return -EINVAL;
  if (attr.btf_vmlinux_value_type_id) {
    if (attr.map_type != BPF_MAP_TYPE_STRUCT_OPS || attr.btf_key_type_id || attr.btf_value_type_id)
      return -EINVAL;
  } else if (attr.btf_key_type_id && !attr.btf_value_type_id) {
    return -EINVAL;
  }
  if (attr.map_type != BPF_MAP_TYPE_BLOOM_FILTER && attr.map_extra) return -EINVAL;
  if ((attr.map_flags & BPF_F_RDONLY) && (attr.map_flags & BPF_F_WRONLY)) return -EINVAL;
  // One NUMA node is all the emulation knows.
  if ((attr.map_flags & BPF_F_NUMA_NODE) && attr.numa_node != 0) return -EINVAL;
  if (attr.map_type == BPF_MAP_TYPE_UNSPEC || attr.map_type >= kKernelMapTypes) return -EINVAL;
  policy::MapSpec spec;
  if (!emulated_type(attr.map_type, &spec.type)) return -EPERM;
  spec.key_size = attr.key_size;
  spec.value_size = attr.value_size;
  spec.max_entries = attr.max_entries;
  spec.flags = attr.map_flags;
  if (int r = map_create_check(spec)) return r;
  char name[BPF_OBJ_NAME_LEN];
  if (int r = obj_name_cpy(name, attr.map_name)) return r;
  // No BTF object exists here (BPF_BTF_LOAD is refused): btf_get_by_fd fails.
  if (attr.btf_key_type_id || attr.btf_value_type_id || attr.btf_vmlinux_value_type_id) {
    std::shared_ptr<BpfObject> none;
    return object_at(static_cast<int>(attr.btf_fd), &none) == -EBADF ? -EBADF : -EINVAL;
  }
  try {
    spec.name = name;
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  bool mmapable = spec.type == policy::MapType::array && (attr.map_flags & BPF_F_MMAPABLE);
  int fd = new_map_fd(mmapable);
  if (fd < 0) return fd;
  std::shared_ptr<BpfMap> map;
  int r = map_create(spec, mmapable ? fd : -1, &map);
  if (r == 0 && mmapable) {
    // The size is the map's: ftruncate on its fd fails, as on a map fd.
    ErrnoSaver saved;
    real::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW);
  }
  std::shared_ptr<MapObject> obj;
  if (r == 0) {
    obj = std::shared_ptr<MapObject>(new (std::nothrow) MapObject(
        name, std::move(map), attr.map_type, attr.map_flags & ~(BPF_F_RDONLY | BPF_F_WRONLY)));
    if (!obj) r = -ENOMEM;
  }
  if (r == 0) r = install(fd, std::move(obj));
  if (r) {
    close_fd(fd);
    return r;
  }
  return fd;
}

int cmd_map_lookup_elem(const bpf_attr& attr) noexcept {
  if (attr_tail_nonzero(attr, SOCKSHIM_ATTR_END(flags))) return -EINVAL;
  if (attr.flags & ~BPF_F_LOCK) return -EINVAL;
  std::shared_ptr<MapObject> m;
  if (int r = elem_map(attr, &m)) return r;
  if (m->map->spec().flags & BPF_F_WRONLY) return -EPERM;
  if (attr.flags & BPF_F_LOCK) return -EINVAL;  // no value here has a bpf_spin_lock
  return map_lookup_elem(*m->map, attr_ptr<const void>(attr.key), attr_ptr<void>(attr.value));
}

int cmd_map_update_elem(const bpf_attr& attr) noexcept {
  if (attr_tail_nonzero(attr, SOCKSHIM_ATTR_END(flags))) return -EINVAL;
  std::shared_ptr<MapObject> m;
  if (int r = elem_map(attr, &m)) return r;
  if (m->frozen.load(std::memory_order_acquire)) return -EPERM;  // map_get_sys_perms
  return map_update_elem(*m->map, attr_ptr<const void>(attr.key), attr_ptr<const void>(attr.value),
                         attr.flags);
}

int cmd_map_delete_elem(const bpf_attr& attr) noexcept {
  if (attr_tail_nonzero(attr, SOCKSHIM_ATTR_END(key))) return -EINVAL;
  std::shared_ptr<MapObject> m;
  if (int r = elem_map(attr, &m)) return r;
  if (m->frozen.load(std::memory_order_acquire)) return -EPERM;
  return map_delete_elem(*m->map, attr_ptr<const void>(attr.key));
}

int cmd_map_get_next_key(const bpf_attr& attr) noexcept {
  if (attr_tail_nonzero(attr, SOCKSHIM_ATTR_END(next_key))) return -EINVAL;
  std::shared_ptr<MapObject> m;
  if (int r = elem_map(attr, &m)) return r;
  return map_get_next_key(*m->map, attr_ptr<const void>(attr.key), attr_ptr<void>(attr.next_key));
}

int cmd_map_freeze(const bpf_attr& attr) noexcept {
  if (attr_tail_nonzero(attr, SOCKSHIM_ATTR_END(map_fd))) return -EINVAL;
  std::shared_ptr<MapObject> m;
  int fd = static_cast<int>(attr.map_fd);
  if (int r = map_at(fd, &m)) return r;
  // A frozen map's fds have lost write access already: a second freeze is EPERM.
  if ((m->map->spec().flags & BPF_F_RDONLY) || m->frozen.exchange(true)) return -EPERM;
  if (m->map_flags & BPF_F_MMAPABLE) {
    // New writable mappings fail with EPERM, as bpf_map_mmap refuses them.
    ErrnoSaver saved;
    real::fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE);
  }
  return 0;
}

int map_get_info(const MapObject& m, const bpf_attr& attr, bpf_attr* uattr) noexcept {
  auto* uinfo = attr_ptr<bpf_map_info>(attr.info.info);
  uint32_t info_len = attr.info.info_len;
  if (int r = check_uarg_tail_zero(uinfo, sizeof(bpf_map_info), info_len)) return r;
  info_len = std::min<uint32_t>(sizeof(bpf_map_info), info_len);
  bpf_map_info info{};
  info.type = m.map_type;
  info.id = m.id;
  info.key_size = m.map->key_size();
  info.value_size = m.map->value_size();
  info.max_entries = m.map->max_entries();
  info.map_flags = m.map_flags;
  std::memcpy(info.name, m.name, sizeof info.name);
  if (info_len) std::memcpy(uinfo, &info, info_len);
  uattr->info.info_len = info_len;
  return 0;
}

}  // namespace sockshim::bpfsys
