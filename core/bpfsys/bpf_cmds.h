// The emulated bpf() commands, each on an attr already copied in (bpf_attr.h),
// in the kernel's order of checks (kernel/bpf/syscall.c). Each returns a new
// fd, 0, or a negative errno.
#pragma once

#include <linux/bpf.h>

#include "core/bpfsys/bpf_objects.h"

namespace sockshim::bpfsys {

int cmd_map_create(const bpf_attr& attr) noexcept;
int cmd_map_lookup_elem(const bpf_attr& attr) noexcept;
int cmd_map_update_elem(const bpf_attr& attr) noexcept;
int cmd_map_delete_elem(const bpf_attr& attr) noexcept;
int cmd_map_get_next_key(const bpf_attr& attr) noexcept;
int cmd_map_freeze(const bpf_attr& attr) noexcept;
int cmd_prog_load(const bpf_attr& attr) noexcept;
int cmd_prog_bind_map(const bpf_attr& attr) noexcept;
int cmd_prog_test_run(const bpf_attr& attr) noexcept;
int cmd_prog_attach(const bpf_attr& attr) noexcept;
int cmd_prog_detach(const bpf_attr& attr) noexcept;
int cmd_link_create(const bpf_attr& attr) noexcept;
int cmd_link_detach(const bpf_attr& attr) noexcept;
// uattr: the caller's attr, where info.info_len is written back.
int cmd_obj_get_info_by_fd(const bpf_attr& attr, bpf_attr* uattr) noexcept;

// The parts of BPF_OBJ_GET_INFO_BY_FD for each kind.
int map_get_info(const MapObject& m, const bpf_attr& attr, bpf_attr* uattr) noexcept;
int prog_get_info(ProgObject& p, const bpf_attr& attr, bpf_attr* uattr) noexcept;
int link_get_info(const LinkObject& l, const bpf_attr& attr, bpf_attr* uattr) noexcept;

// bpf_obj_name_cpy: name must be alphanumerics, '_' and '.', NUL-terminated
// within BPF_OBJ_NAME_LEN; -EINVAL otherwise.
int obj_name_cpy(char (&dst)[BPF_OBJ_NAME_LEN], const char (&src)[BPF_OBJ_NAME_LEN]) noexcept;

}  // namespace sockshim::bpfsys
