// A domain's member table: the processes attached to it, each by pid and start
// time (/proc/PID/stat field 22: a pid reused by another process has another
// start time). The arena's root object. Every function needs the arena's lock.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "core/domain/arena.h"

namespace sockshim::domain {

inline constexpr uint32_t kMaxMembers = 1024;  // 48 KiB: a fork-per-connection server's children
inline constexpr uint64_t kMemberTableMagic = 0x5352454242454d44;  // "DMEMBERS"

struct MemberSlot {
  uint32_t live;  // 0: free
  int32_t pid;
  uint64_t start_time;
  uint64_t policy;  // the policy path: a NUL-terminated string in the arena, 0 none
  char comm[16];    // /proc/PID/comm, for a reader that cannot ask the process
};

struct MemberTable {
  uint64_t magic;
  uint32_t capacity;
  uint32_t live;
  MemberSlot slot[kMaxMembers];
};

// A member as a reader sees it.
struct Member {
  pid_t pid;
  uint64_t start_time;
  std::string policy;
  std::string comm;
};

// The start time of a live process, or 0 when there is none by that pid or
// it is a zombie (killed, not yet waited for: its sockets are gone).
uint64_t process_start_time(pid_t pid) noexcept;

// CLOCK_BOOTTIME in ns: the clock a start time counts in ticks.
uint64_t boottime_ns() noexcept;
// The start time of a process forked between two boottime_ns() readings,
// before <= fork <= after, without reading /proc (whose dentries for a fresh
// pid make its exit and reaping dearer): exact when both readings fall in one
// clock tick, else 0 (the fork's tick is unknown; read /proc).
uint64_t start_time_between(uint64_t before_ns, uint64_t after_ns) noexcept;

// Allocates an empty table and makes it the arena's root.
int members_create(Arena& arena) noexcept;
// The root table, its magic and capacity checked, or nullptr with the
// arena's why() set. Reads one page: a fork child joining touches few.
MemberTable* member_table(Arena& arena) noexcept;
// The same, with every live slot's string checked too: before reading them.
MemberTable* member_table_checked(Arena& arena) noexcept;

// Registers pid (start_time, policy path or "", comm): reuses its slot when it
// is there already (an exec'd image re-attaching) unless fresh (a fork child,
// which cannot be there: the scan of every slot is skipped). Returns the slot
// index, -ENOSPC when the table is full of live members, -ENOMEM, -EUCLEAN.
int member_join(Arena& arena, pid_t pid, uint64_t start_time, const std::string& policy,
                const char* comm, bool fresh = false) noexcept;
// Frees the slot of every member that is no longer alive, and its holds on
// the shared maps' sockets (shared_maps.h). Returns how many.
int members_reap(Arena& arena) noexcept;
// The live members (after reaping), by pid.
int members_list(Arena& arena, std::vector<Member>* out) noexcept;
// After a member died holding the lock: checks and repairs the table and the
// shared maps (shared_maps_check) and gives back every block neither reaches
// (one it had allocated but not yet linked).
bool members_repair(Arena& arena) noexcept;

}  // namespace sockshim::domain
