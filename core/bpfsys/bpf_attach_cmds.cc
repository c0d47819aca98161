// BPF_PROG_ATTACH, BPF_PROG_DETACH, BPF_LINK_CREATE and BPF_LINK_DETACH
// (kernel/bpf/syscall.c): SK_MSG and
// SK_SKB programs to a sockmap or sockhash (net/core/sock_map.c
// sock_map_get_from_fd, sock_map_prog_detach, sock_map_prog_update: the same
// SockMapBase::prog_attach the JSON policy's "attach" goes through), and
// SOCK_OPS programs to a cgroup (kernel/bpf/cgroup.c), which here means every
// TCP socket of this process (core/maps/sock_ops.h), attached directly or
// through a link.
#include <errno.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include "core/bpfsys/bpf_attr.h"
#include "core/bpfsys/bpf_cmds.h"
#include "core/maps/sock_map_base.h"
#include "core/maps/sock_ops.h"

namespace sockshim::bpfsys {

namespace {

// BPF_F_ALLOW_OVERRIDE | BPF_F_ALLOW_MULTI | BPF_F_REPLACE: the attach flags
// of the program types emulated here.
constexpr uint32_t kAttachFlags = BPF_F_ALLOW_OVERRIDE | BPF_F_ALLOW_MULTI | BPF_F_REPLACE;
// BPF_CGROUP_MAX_PROGS: the most programs of one attach type on a cgroup.
constexpr size_t kCgroupMaxProgs = 64;

// The program type of an attach type the kernel knows whose programs cannot
// be loaded here: bpf_prog_get_type finds no program of it (EINVAL).
constexpr uint32_t kNotLoadable = UINT32_MAX;

// attach_type_to_prog_type: BPF_PROG_TYPE_UNSPEC (EINVAL) for a type no
// kernel knows.
uint32_t attach_prog_type(uint32_t attach_type) noexcept {
  switch (attach_type) {
    case BPF_SK_MSG_VERDICT:
      return BPF_PROG_TYPE_SK_MSG;
    case BPF_SK_SKB_STREAM_PARSER:
    case BPF_SK_SKB_STREAM_VERDICT:
    case BPF_SK_SKB_VERDICT:
      return BPF_PROG_TYPE_SK_SKB;
    case BPF_CGROUP_SOCK_OPS:
      return BPF_PROG_TYPE_SOCK_OPS;
    default:
      return attach_type < __MAX_BPF_ATTACH_TYPE ? kNotLoadable : uint32_t{BPF_PROG_TYPE_UNSPEC};
  }
}

policy::AttachType sock_map_attach_type(uint32_t attach_type) noexcept {
  switch (attach_type) {
    case BPF_SK_SKB_STREAM_PARSER:
      return policy::AttachType::sk_skb_stream_parser;
    case BPF_SK_SKB_STREAM_VERDICT:
      return policy::AttachType::sk_skb_stream_verdict;
    case BPF_SK_SKB_VERDICT:
      return policy::AttachType::sk_skb_verdict;
    default:
      return policy::AttachType::sk_msg_verdict;
  }
}

// bpf_prog_get_type: the program at fd, of type ptype (-EINVAL otherwise).
int typed_prog_at(uint32_t fd, uint32_t ptype, std::shared_ptr<ProgObject>* out) noexcept {
  if (int r = prog_at(static_cast<int>(fd), out)) return r;
  return (*out)->prog_type == ptype ? 0 : -EINVAL;
}

// The map of a sockmap attach: -EBADF, -EINVAL (not a map), -EOPNOTSUPP (not
// a sockmap or sockhash: sock_map_progs has none).
int sock_map_at(uint32_t fd, SockMapBase** out, std::shared_ptr<MapObject>* hold) noexcept {
  if (int r = map_at(static_cast<int>(fd), hold)) return r;
  const policy::MapType t = (*hold)->map->type();
  if (t != policy::MapType::sockmap && t != policy::MapType::sockhash) return -EOPNOTSUPP;
  *out = static_cast<SockMapBase*>((*hold)->map.get());
  return 0;
}

// A cgroup's fd: any open directory here (cgroup_get_from_fd: -EBADF).
// *id: its inode number.
int cgroup_at(uint32_t fd, uint64_t* id = nullptr) noexcept {
  struct stat st;
  if (::fstat(static_cast<int>(fd), &st) < 0 || !S_ISDIR(st.st_mode)) return -EBADF;
  if (id) *id = st.st_ino;
  return 0;
}

// One program of the cgroup's list, attached directly (link null) or by a link.
struct CgroupEntry {
  std::shared_ptr<ProgObject> prog;
  const LinkObject* link = nullptr;
  bool operator==(const std::shared_ptr<ProgObject>& p) const noexcept {
    return !link && prog == p;
  }
};

// The cgroup's BPF_CGROUP_SOCK_OPS programs (__cgroup_bpf_attach's list for
// one attach type) and the flags they were attached with.
struct Cgroup {
  std::mutex lock;
  std::vector<CgroupEntry> progs;
  uint32_t flags = 0;
};
Cgroup& cgroup() noexcept {
  static auto* c = new Cgroup;  // leaked: hooks run during exit
  return *c;
}

// Hands the list to core; under c.lock.
void publish(const Cgroup& c) {
  std::vector<const policy::Program*> progs;
  for (const auto& e : c.progs) progs.push_back(e.prog->program);
  set_cgroup_sock_ops(std::move(progs));
}

int cgroup_attach(const bpf_attr& attr, std::shared_ptr<ProgObject> prog) noexcept {
  const uint32_t flags = attr.attach_flags;
  if ((flags & BPF_F_ALLOW_OVERRIDE) && (flags & BPF_F_ALLOW_MULTI)) return -EINVAL;
  if ((flags & BPF_F_REPLACE) && !(flags & BPF_F_ALLOW_MULTI)) return -EINVAL;
  std::shared_ptr<ProgObject> replace;
  if (flags & BPF_F_REPLACE) {
    if (int r = typed_prog_at(attr.replace_bpf_fd, BPF_PROG_TYPE_SOCK_OPS, &replace)) return r;
  }
  if (int r = cgroup_at(attr.target_fd)) return r;
  Cgroup& c = cgroup();
  std::lock_guard g(c.lock);
  const uint32_t saved = flags & (BPF_F_ALLOW_OVERRIDE | BPF_F_ALLOW_MULTI);
  if (!c.progs.empty() && c.flags != saved) return -EPERM;  // mixing modes
  try {
    auto it = std::find(c.progs.begin(), c.progs.end(), prog);
    if (saved & BPF_F_ALLOW_MULTI) {
      if (it != c.progs.end()) return -EEXIST;
      if (replace) {
        auto old = std::find(c.progs.begin(), c.progs.end(), replace);
        if (old == c.progs.end()) return -ENOENT;
        *old = CgroupEntry{prog};
      } else {
        if (c.progs.size() >= kCgroupMaxProgs) return -E2BIG;
        c.progs.push_back(CgroupEntry{prog});
      }
    } else {
      c.progs.assign(1, CgroupEntry{prog});  // one program: a new attach replaces it
    }
    keep_program_policy(prog->owner);
    c.flags = saved;
    publish(c);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  return 0;
}

// __cgroup_bpf_detach: without BPF_F_ALLOW_MULTI the one program goes, even
// when attach_bpf_fd names none; with it, the program named (-ENOENT if not
// attached).
int cgroup_detach(const bpf_attr& attr) noexcept {
  std::shared_ptr<ProgObject> prog;
  if (typed_prog_at(attr.attach_bpf_fd, BPF_PROG_TYPE_SOCK_OPS, &prog)) prog = nullptr;
  if (int r = cgroup_at(attr.target_fd)) return r;
  Cgroup& c = cgroup();
  std::lock_guard g(c.lock);
  if (c.progs.empty()) return -ENOENT;
  if (c.flags & BPF_F_ALLOW_MULTI) {
    auto it = std::find(c.progs.begin(), c.progs.end(), prog);  // links' programs are not found
    if (!prog || it == c.progs.end()) return -ENOENT;
    c.progs.erase(it);
  } else {
    c.progs.clear();
  }
  try {
    publish(c);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  return 0;
}

// cgroup_bpf_link_attach: a link joins the list in BPF_F_ALLOW_MULTI mode
// (-EPERM when programs were attached without it).
int cgroup_link_create(const bpf_attr& attr, std::shared_ptr<ProgObject> prog) noexcept {
  if (attr.link_create.flags) return -EINVAL;
  uint64_t id;
  if (int r = cgroup_at(attr.link_create.target_fd, &id)) return r;
  auto link = std::shared_ptr<LinkObject>(new (std::nothrow)
                                              LinkObject(prog, attr.link_create.attach_type, id));
  if (!link) return -ENOMEM;
  {
    Cgroup& c = cgroup();
    std::lock_guard g(c.lock);
    if (!c.progs.empty() && c.flags != BPF_F_ALLOW_MULTI) return -EPERM;
    if (c.progs.size() >= kCgroupMaxProgs) return -E2BIG;
    try {
      c.progs.push_back(CgroupEntry{prog, link.get()});
      keep_program_policy(prog->owner);
      c.flags = BPF_F_ALLOW_MULTI;
      publish(c);
    } catch (const std::bad_alloc&) {
      c.progs.pop_back();
      return -ENOMEM;
    }
  }
  int fd = new_object_fd();
  if (fd < 0) return fd;  // link's destructor detaches it
  if (int err = install(fd, std::move(link))) {
    close_object_fd(fd);
    return err;
  }
  return fd;
}

// The link's program leaves the cgroup's list (once).
void cgroup_link_release(LinkObject& link) noexcept {
  if (link.detached.exchange(true)) return;
  Cgroup& c = cgroup();
  std::lock_guard g(c.lock);
  auto it = std::find_if(c.progs.begin(), c.progs.end(),
                         [&](const CgroupEntry& e) { return e.link == &link; });
  if (it == c.progs.end()) return;
  c.progs.erase(it);
  try {
    publish(c);
  } catch (const std::bad_alloc&) {
    set_cgroup_sock_ops({});  // keeps no program that is gone
  }
}

}  // namespace

LinkObject::~LinkObject() {
  cgroup_link_release(*this);
}

int cmd_link_create(const bpf_attr& attr) noexcept {
  if (attr_tail_nonzero(attr, SOCKSHIM_ATTR_END(link_create))) return -EINVAL;
  std::shared_ptr<ProgObject> prog;
  if (int r = prog_at(static_cast<int>(attr.link_create.prog_fd), &prog)) return r;
  // Only cgroup links of SOCK_OPS programs: sockmap links (sock_map_link_create)
  // are not emulated, and other program types do not load here.
  if (prog->prog_type == BPF_PROG_TYPE_SOCKET_FILTER) return -EINVAL;  // no links in the kernel
  if (prog->prog_type != BPF_PROG_TYPE_SOCK_OPS) return -EPERM;
  if (attr.link_create.attach_type != BPF_CGROUP_SOCK_OPS) return -EINVAL;
  return cgroup_link_create(attr, std::move(prog));
}

int cmd_link_detach(const bpf_attr& attr) noexcept {
  if (attr_tail_nonzero(attr, SOCKSHIM_ATTR_END(link_detach))) return -EINVAL;
  std::shared_ptr<LinkObject> link;
  if (int r = link_at(static_cast<int>(attr.link_detach.link_fd), &link)) return r;
  cgroup_link_release(*link);
  return 0;
}

int link_get_info(const LinkObject& l, const bpf_attr& attr, bpf_attr* uattr) noexcept {
  auto* uinfo = attr_ptr<bpf_link_info>(attr.info.info);
  uint32_t info_len = attr.info.info_len;
  if (int r = check_uarg_tail_zero(uinfo, sizeof(bpf_link_info), info_len)) return r;
  info_len = std::min<uint32_t>(sizeof(bpf_link_info), info_len);
  bpf_link_info info{};
  info.type = BPF_LINK_TYPE_CGROUP;
  info.id = l.id;
  info.prog_id = l.prog->id;
  // bpf_cgroup_link_fill_link_info: a detached link has no cgroup.
  info.cgroup.cgroup_id = l.detached.load() ? 0 : l.cgroup_id;
  info.cgroup.attach_type = l.attach_type;
  if (info_len) std::memcpy(uinfo, &info, info_len);
  uattr->info.info_len = info_len;
  return 0;
}

void attach_after_fork_child() noexcept {
  new (&cgroup().lock) std::mutex();
}

int cmd_prog_attach(const bpf_attr& attr) noexcept {
  if (attr_tail_nonzero(attr, SOCKSHIM_ATTR_END(replace_bpf_fd))) return -EINVAL;
  if (attr.attach_flags & ~kAttachFlags) return -EINVAL;
  const uint32_t ptype = attach_prog_type(attr.attach_type);
  if (ptype == BPF_PROG_TYPE_UNSPEC) return -EINVAL;
  std::shared_ptr<ProgObject> prog;
  if (int r = typed_prog_at(attr.attach_bpf_fd, ptype, &prog)) return r;
  if (ptype == BPF_PROG_TYPE_SOCK_OPS) return cgroup_attach(attr, std::move(prog));
  // sock_map_get_from_fd
  if (attr.attach_flags || attr.replace_bpf_fd) return -EINVAL;
  SockMapBase* map;
  std::shared_ptr<MapObject> hold;
  if (int r = sock_map_at(attr.target_fd, &map, &hold)) return r;
  keep_program_policy(prog->owner);
  return map->prog_attach(prog->program, sock_map_attach_type(attr.attach_type));
}

int cmd_prog_detach(const bpf_attr& attr) noexcept {
  if (attr_tail_nonzero(attr, SOCKSHIM_ATTR_END(replace_bpf_fd))) return -EINVAL;
  const uint32_t ptype = attach_prog_type(attr.attach_type);
  if (ptype == BPF_PROG_TYPE_SOCK_OPS) return cgroup_detach(attr);
  if (ptype != BPF_PROG_TYPE_SK_MSG && ptype != BPF_PROG_TYPE_SK_SKB) return -EINVAL;
  // sock_map_prog_detach: the map, then the program named, of this type.
  if (attr.attach_flags || attr.replace_bpf_fd) return -EINVAL;
  SockMapBase* map;
  std::shared_ptr<MapObject> hold;
  int r = sock_map_at(attr.target_fd, &map, &hold);
  if (r && r != -EOPNOTSUPP) return r;
  std::shared_ptr<ProgObject> prog;
  if (int e = typed_prog_at(attr.attach_bpf_fd, ptype, &prog)) return e;
  if (r) return r;
  return map->prog_detach(prog->program, sock_map_attach_type(attr.attach_type));
}

}  // namespace sockshim::bpfsys
