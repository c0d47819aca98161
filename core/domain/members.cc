#include "core/domain/members.h"

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <new>

#include "core/domain/shared_maps.h"
#include "core/domain/shared_policy.h"
#include "core/domain/shared_storage.h"
#include "core/sock/real.h"

namespace sockshim::domain {
namespace {

// The string at off, checked to end with a NUL inside its block.
const char* arena_string(Arena& arena, uint64_t off) noexcept {
  uint64_t n = arena.payload_size(off);
  const char* s = n ? arena.at<const char>(off, n) : nullptr;
  return s && memchr(s, '\0', n) ? s : nullptr;
}

void free_slot(Arena& arena, MemberTable* t, MemberSlot& s) noexcept {
  uint64_t policy = s.policy;
  s.live = 0;  // first: a slot is never live with a freed string
  s.policy = 0;
  t->live -= t->live ? 1 : 0;
  if (policy) arena.free(policy);
}

}  // namespace

uint64_t process_start_time(pid_t pid) noexcept {
  char path[32], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n = real::read(fd, buf, sizeof buf - 1);
  real::close(fd);
  if (n <= 0) return 0;
  buf[n] = '\0';
  // "pid (comm) state ...": comm may hold anything, so parse after its last ')'.
  char* p = strrchr(buf, ')');
  if (!p || p[1] != ' ') return 0;
  char state = p[2];
  if (state == 'Z' || state == 'X' || state == 'x') return 0;
  p += 2;
  for (int field = 3; field < 22; ++field) {  // state is field 3, starttime 22
    p = strchr(p, ' ');
    if (!p) return 0;
    ++p;
  }
  return strtoull(p, nullptr, 10);
}

uint64_t boottime_ns() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000 + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t start_time_between(uint64_t before_ns, uint64_t after_ns) noexcept {
  // /proc/PID/stat gives the task's CLOCK_BOOTTIME at fork, in whole ticks.
  const uint64_t tick_ns = 1000000000 / static_cast<uint64_t>(sysconf(_SC_CLK_TCK));
  uint64_t tick = before_ns / tick_ns;
  return before_ns <= after_ns && tick == after_ns / tick_ns ? tick : 0;
}

int members_create(Arena& arena) noexcept {
  int err = 0;
  uint64_t off = arena.alloc(sizeof(MemberTable), &err);
  if (!off) return err;
  auto* t = arena.at<MemberTable>(off);
  t->capacity = kMaxMembers;
  t->magic = kMemberTableMagic;
  arena.header()->root = off;
  return 0;
}

MemberTable* member_table(Arena& arena) noexcept {
  ArenaHeader* h = arena.header();
  MemberTable* t =
      arena.payload_size(h->root) >= sizeof(MemberTable) ? arena.at<MemberTable>(h->root) : nullptr;
  if (!t || t->magic != kMemberTableMagic || t->capacity != kMaxMembers) {
    arena.corrupt("the member table at offset %llu is missing or overwritten",
                  static_cast<unsigned long long>(h->root));
    return nullptr;
  }
  return t;
}

MemberTable* member_table_checked(Arena& arena) noexcept {
  MemberTable* t = member_table(arena);
  if (!t) return nullptr;
  for (uint32_t i = 0; i < kMaxMembers; ++i) {
    const MemberSlot& s = t->slot[i];
    if (s.live && s.policy && !arena_string(arena, s.policy)) {
      arena.corrupt("member slot %u (pid %d) names its policy at offset %llu, not a string", i,
                    s.pid, static_cast<unsigned long long>(s.policy));
      return nullptr;
    }
  }
  return t;
}

int member_join(Arena& arena, pid_t pid, uint64_t start_time, const std::string& policy,
                const char* comm, bool fresh) noexcept {
  MemberTable* t = member_table(arena);
  if (!t) return -EUCLEAN;
  int index = -1;
  for (uint32_t i = 0; i < kMaxMembers && !fresh; ++i) {
    MemberSlot& s = t->slot[i];
    if (s.live && s.pid == pid && s.start_time == start_time) {
      free_slot(arena, t, s);  // an exec'd image: its policy may have changed
      index = static_cast<int>(i);
      break;
    }
  }
  if (index < 0) {
    for (int pass = 0; pass < 2 && index < 0; ++pass) {
      if (pass == 1 && members_reap(arena) == 0) return -ENOSPC;
      for (uint32_t i = 0; i < kMaxMembers && index < 0; ++i)
        if (!t->slot[i].live) index = static_cast<int>(i);
    }
  }
  uint64_t policy_off = 0;
  if (!policy.empty()) {
    int err = 0;
    policy_off = arena.alloc(policy.size() + 1, &err);
    if (!policy_off) return err;
    memcpy(arena.at<char>(policy_off, policy.size() + 1), policy.c_str(), policy.size() + 1);
  }
  MemberSlot& s = t->slot[index];
  s.pid = pid;
  s.start_time = start_time;
  s.policy = policy_off;
  memset(s.comm, 0, sizeof s.comm);
  if (comm) strncpy(s.comm, comm, sizeof s.comm - 1);
  s.live = 1;  // last: a live slot is whole
  t->live += 1;
  arena.header()->generation.fetch_add(1, std::memory_order_release);
  return index;
}

int members_reap(Arena& arena) noexcept {
  MemberTable* t = member_table(arena);
  if (!t) return -EUCLEAN;
  int reaped = 0;
  Holder dead[64];  // their sockets are let go of, in batches
  size_t n_dead = 0;
  for (MemberSlot& s : t->slot) {
    if (!s.live || process_start_time(s.pid) == s.start_time) continue;
    dead[n_dead++] = {s.pid, s.start_time, -1};
    free_slot(arena, t, s);
    ++reaped;
    if (n_dead == std::size(dead)) {
      if (int r = sock_holders_drop_dead(arena, dead, n_dead); r < 0) return r;
      if (int r = storage_holders_drop_dead(arena, dead, n_dead); r < 0) return r;
      n_dead = 0;
    }
  }
  if (int r = sock_holders_drop_dead(arena, dead, n_dead); r < 0) return r;
  if (int r = storage_holders_drop_dead(arena, dead, n_dead); r < 0) return r;
  if (reaped) arena.header()->generation.fetch_add(1, std::memory_order_release);
  return reaped;
}

int members_list(Arena& arena, std::vector<Member>* out) noexcept {
  if (int r = members_reap(arena); r < 0) return r;
  MemberTable* t = member_table_checked(arena);
  if (!t) return -EUCLEAN;
  try {
    out->clear();
    for (const MemberSlot& s : t->slot) {
      if (!s.live) continue;
      const char* policy = s.policy ? arena_string(arena, s.policy) : "";
      out->push_back({s.pid, s.start_time, policy ? policy : "",
                      std::string(s.comm, strnlen(s.comm, sizeof s.comm))});
    }
    std::sort(out->begin(), out->end(),
              [](const Member& a, const Member& b) { return a.pid < b.pid; });
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  return 0;
}

bool members_repair(Arena& arena) noexcept {
  if (arena.rebuild(nullptr, 0) < 0) return false;  // the tiling first: the table lives in it
  MemberTable* t = member_table_checked(arena);
  if (!t) return false;
  std::vector<uint64_t> keep;  // every block the table and the shared maps reach
  try {
    keep.push_back(arena.header()->root);
    uint32_t live = 0;
    for (const MemberSlot& s : t->slot) {
      if (!s.live) continue;
      ++live;
      if (s.policy) keep.push_back(s.policy);
    }
    t->live = live;
  } catch (const std::bad_alloc&) {
    return false;
  }
  if (!shared_maps_check(arena, true, &keep) || !shared_storage_check(arena, true, &keep) ||
      !domain_policy_check(arena, &keep))
    return false;
  std::sort(keep.begin(), keep.end());
  return arena.rebuild(keep.data(), keep.size()) == 0;
}

}  // namespace sockshim::domain
