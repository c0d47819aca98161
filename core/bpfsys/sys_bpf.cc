#include "core/bpfsys/sys_bpf.h"

#include <errno.h>
#include <linux/bpf.h>

#include <atomic>

#include "core/bpfsys/bpf_attr.h"
#include "core/bpfsys/bpf_cmds.h"
#include "core/sock/log.h"

namespace sockshim::bpfsys {

namespace {

// The 6.18 kernel's commands end below this (BPF_PROG_STREAM_READ_BY_FD is
// 37): larger numbers are unknown to it (EINVAL).
constexpr int kKernelCmds = 38;

// A command that is not emulated gets what an unprivileged caller gets
// (kernel.unprivileged_bpf_disabled): EPERM. Said once per command in the log.
int not_emulated(int cmd) noexcept {
  static std::atomic<uint64_t> said{0};
  if (!(said.fetch_or(1ull << cmd) & (1ull << cmd)))
    log::info("bpf(): command {} is not emulated: EPERM", cmd);
  return -EPERM;
}

}  // namespace

int cmd_obj_get_info_by_fd(const bpf_attr& attr, bpf_attr* uattr) noexcept {
  if (attr_tail_nonzero(attr, SOCKSHIM_ATTR_END(info.info))) return -EINVAL;
  std::shared_ptr<BpfObject> obj;
  if (int r = object_at(static_cast<int>(attr.info.bpf_fd), &obj))
    return r == -EBADF ? -EBADFD : r;  // this command says EBADFD for a closed fd
  if (obj->kind == BpfObject::Kind::map)
    return map_get_info(static_cast<const MapObject&>(*obj), attr, uattr);
  if (obj->kind == BpfObject::Kind::link)
    return link_get_info(static_cast<const LinkObject&>(*obj), attr, uattr);
  return prog_get_info(static_cast<ProgObject&>(*obj), attr, uattr);
}

long sys_bpf(int cmd, void* uattr, unsigned size) noexcept {
  bpf_attr attr;
  if (int r = copy_attr(uattr, size, &attr)) return r;
  switch (cmd) {
    case BPF_MAP_CREATE:
      return cmd_map_create(attr);
    case BPF_MAP_LOOKUP_ELEM:
      return cmd_map_lookup_elem(attr);
    case BPF_MAP_UPDATE_ELEM:
      return cmd_map_update_elem(attr);
    case BPF_MAP_DELETE_ELEM:
      return cmd_map_delete_elem(attr);
    case BPF_MAP_GET_NEXT_KEY:
      return cmd_map_get_next_key(attr);
    case BPF_MAP_FREEZE:
      return cmd_map_freeze(attr);
    case BPF_PROG_LOAD:
      return cmd_prog_load(attr);
    case BPF_PROG_ATTACH:
      return cmd_prog_attach(attr);
    case BPF_PROG_DETACH:
      return cmd_prog_detach(attr);
    case BPF_LINK_CREATE:
      return cmd_link_create(attr);
    case BPF_LINK_DETACH:
      return cmd_link_detach(attr);
    case BPF_PROG_TEST_RUN:
      return cmd_prog_test_run(attr);
    case BPF_PROG_BIND_MAP:
      return cmd_prog_bind_map(attr);
    case BPF_OBJ_GET_INFO_BY_FD:
      return cmd_obj_get_info_by_fd(attr, static_cast<bpf_attr*>(uattr));
    case BPF_BTF_LOAD:
      // BTF is not emulated. libbpf loads without it ("BTF is optional").
      return -EPERM;
    default:
      if (cmd < 0 || cmd >= kKernelCmds) return -EINVAL;
      return not_emulated(cmd);
  }
}

}  // namespace sockshim::bpfsys
