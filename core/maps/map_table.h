// The loaded maps of a process, by name: created from MapSpecs (the policy's
// "maps") with the programs of its "attach" list. The policy loader builds one
// and installs it; the C API and the hooks find maps through current_maps().
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/maps/bpf_map.h"
#include "policy/spec.h"

namespace sockshim {

class SockMapBase;
class SkStorage;

struct MapAttachment {
  const policy::Program* prog = nullptr;
  std::string map;
  policy::AttachType type = policy::AttachType::sk_msg_verdict;
};

class MapTable {
 public:
  // Creates every map (map_create's checks: EINVAL, E2BIG; a duplicate name
  // EEXIST) and attaches the programs in order (EBUSY, EOPNOTSUPP; an unknown
  // map EBADF). Returns 0 or -errno, and says which entry failed in *error.
  // With keep (a reload), a map of keep whose definition is unchanged (name,
  // type, sizes, layouts, flags) is shared instead of created, so its sockets
  // stay; its programs are replaced by the new attachments.
  static int create(const std::vector<policy::MapSpec>& specs,
                    const std::vector<MapAttachment>& attachments, std::unique_ptr<MapTable>* out,
                    std::string* error, const MapTable* keep = nullptr);
  ~MapTable();

  BpfMap* find(std::string_view name) const noexcept;
  SockMapBase* find_sock_map(std::string_view name) const noexcept;  // sockmap or sockhash
  SkStorage* find_sk_storage(std::string_view name) const noexcept;
  const std::vector<BpfMap*>& maps() const noexcept { return order_; }  // in creation order

  // BPF_PROG_ATTACH / BPF_PROG_DETACH with a map as the target: -EBADF for an
  // unknown map, -EOPNOTSUPP for an sk_storage map, else SockMapBase's rules.
  int prog_attach(const policy::Program* prog, std::string_view map,
                  policy::AttachType type) noexcept;
  int prog_detach(const policy::Program* prog, std::string_view map,
                  policy::AttachType type) noexcept;

 private:
  MapTable() = default;
  // Shared: a reload's new table holds the maps it keeps from the old one.
  std::map<std::string, std::shared_ptr<BpfMap>, std::less<>> by_name_;
  std::vector<BpfMap*> order_;
};

// The process's installed maps (null before a policy is loaded). The old table
// is freed, and its sockets let go, when its last user drops it.
std::shared_ptr<MapTable> current_maps() noexcept;
void install_maps(std::shared_ptr<MapTable> table) noexcept;

// In a fork child: frees every lock of the installed maps, their psocks and
// sk_storage that a thread of the parent may have held. The shim's fork-child
// handler calls it, as it calls registry::after_fork_child.
void maps_after_fork_child() noexcept;

}  // namespace sockshim
