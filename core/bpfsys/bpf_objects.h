// The objects bpf() creates and the fds that refer to them. Each object is a
// real fd of the process (a memfd for an mmapable array, an epoll instance
// otherwise: both refuse read and write, as a bpf map fd does), so it is
// counted, inherited and closed like the kernel's. Every fd dup() made of it
// refers to the same object; the object goes when its last fd is closed and
// nothing else (a program's used maps) holds it, as at the kernel's last fput.
#pragma once

#include <linux/bpf.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "bpf/program.h"
#include "core/maps/bpf_map.h"
#include "core/maps/loaded_policy.h"

namespace sockshim::bpfsys {

class BpfObject {
 public:
  enum class Kind : uint8_t { map, prog, link };
  BpfObject(Kind kind, const char (&name)[BPF_OBJ_NAME_LEN]) noexcept;
  virtual ~BpfObject() = default;
  BpfObject(const BpfObject&) = delete;
  BpfObject& operator=(const BpfObject&) = delete;

  const Kind kind;
  const uint32_t id;  // from 1, as the kernel's idr_alloc_cyclic, per kind
  char name[BPF_OBJ_NAME_LEN];
};

class MapObject final : public BpfObject {
 public:
  MapObject(const char (&name)[BPF_OBJ_NAME_LEN], std::shared_ptr<BpfMap> map, uint32_t map_type,
            uint32_t map_flags) noexcept
      : BpfObject(Kind::map, name), map(std::move(map)), map_type(map_type), map_flags(map_flags) {}

  const std::shared_ptr<BpfMap> map;
  const uint32_t map_type;          // BPF_MAP_TYPE_*
  const uint32_t map_flags;         // as created, less BPF_F_RDONLY / BPF_F_WRONLY (the fd's mode)
  std::atomic<bool> frozen{false};  // BPF_MAP_FREEZE: no more writes from user space
};

class ProgObject final : public BpfObject {
 public:
  ProgObject(const char (&name)[BPF_OBJ_NAME_LEN], uint32_t prog_type,
             uint32_t expected_attach_type) noexcept
      : BpfObject(Kind::prog, name),
        prog_type(prog_type),
        expected_attach_type(expected_attach_type) {}

  const uint32_t prog_type;  // BPF_PROG_TYPE_*
  const uint32_t expected_attach_type;
  // A socket filter (libbpf's probes): checked, never run.
  bpf::LoadedProgram prog;
  // SK_MSG, SK_SKB, SOCK_OPS: the program core runs. `owner` holds it and the
  // maps it names (their index in owner->map_by_index is how it names them);
  // attaching keeps owner for the life of the process (keep_program_policy),
  // as core holds programs by plain pointer.
  std::shared_ptr<LoadedPolicy> owner;
  const policy::Program* program = nullptr;
  // The maps its instructions name and those BPF_PROG_BIND_MAP added: they
  // live as long as the program (the kernel's used_maps).
  std::mutex maps_lock;
  std::vector<std::shared_ptr<MapObject>> used_maps;
};

// A BPF_LINK_CREATE link of a SOCK_OPS program to a cgroup (the only links
// here): the program stays attached while the link is (bpf_attach_cmds.cc),
// and is detached when the link's last fd is closed or by BPF_LINK_DETACH.
class LinkObject final : public BpfObject {
 public:
  LinkObject(std::shared_ptr<ProgObject> prog, uint32_t attach_type, uint64_t cgroup_id) noexcept
      : BpfObject(Kind::link, prog->name),
        prog(std::move(prog)),
        attach_type(attach_type),
        cgroup_id(cgroup_id) {}
  ~LinkObject() override;

  const std::shared_ptr<ProgObject> prog;
  const uint32_t attach_type;
  const uint64_t cgroup_id;  // the directory's inode number, as a cgroup's id is its inode's
  std::atomic<bool> detached{false};
};

// A new fd for a program or link: an epoll instance (read, write and mmap
// fail on it, as on the kernel's), or -errno. close_object_fd closes one that
// was not installed, errno kept.
int new_object_fd() noexcept;
void close_object_fd(int fd) noexcept;

// fd -> object. 0 or -ENOMEM; whatever sat at fd before was stale.
int install(int fd, std::shared_ptr<BpfObject> obj) noexcept;

// The object fd refers to: 0, -EBADF when fd is not open, -EINVAL when it is
// open but not a bpf() object (the kernel's fdget and f_op checks).
int object_at(int fd, std::shared_ptr<BpfObject>* out) noexcept;
int map_at(int fd, std::shared_ptr<MapObject>* out) noexcept;
int prog_at(int fd, std::shared_ptr<ProgObject>* out) noexcept;
int link_at(int fd, std::shared_ptr<LinkObject>* out) noexcept;

// The fd hooks (shim/hooks_fd.cc). may_hold is the close fast path: false
// while the process has no bpf() fd. untrack takes fd's object out before the
// real close; the caller releases it after, with errno kept.
extern std::atomic<uint32_t> g_fds_held;
inline bool may_hold() noexcept {
  return g_fds_held.load(std::memory_order_relaxed) != 0;
}
std::shared_ptr<BpfObject> untrack(int fd) noexcept;
void untrack_range(unsigned lo, unsigned hi) noexcept;
// After a successful dup/dup2/dup3/F_DUPFD: newfd refers to oldfd's object,
// or to none (its old object, if any, was closed by the dup).
void track_dup(int oldfd, int newfd) noexcept;

// Every map object with an fd, once each, in id order.
std::vector<std::shared_ptr<MapObject>> map_objects();

// In a fork child: the table's lock and the maps' locks may have been held.
void after_fork_child() noexcept;
// The same for the cgroup's attach lock (bpf_attach_cmds.cc), which
// after_fork_child calls.
void attach_after_fork_child() noexcept;

}  // namespace sockshim::bpfsys
