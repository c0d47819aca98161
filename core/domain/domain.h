// Domains: the processes of one user that run under the same policy file (by
// its realpath) or the same SOCKSHIM_DOMAIN=name share what in the kernel
// belongs to sockets rather than to a process. A domain is a directory under
// the runtime directory holding an arena (arena.h) whose root is the member
// table (members.h). docs/domains.md is the user's view.
//
// Failure is closed: a domain that cannot be attached, or whose memory stops
// adding up, is left with one logged error, and the process carries on
// without it (pass-through for what the domain would share).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "core/domain/arena.h"
#include "core/domain/domain_files.h"
#include "core/domain/members.h"
#include "core/domain/shared_maps.h"

namespace sockshim::domain {

// A domain's identity: "name:NAME" for SOCKSHIM_DOMAIN=NAME, else
// "policy:REALPATH" for a loaded policy; "" for none (no policy, no name), or
// on error with *why set (a bad name, a policy path that does not resolve).
std::string domain_key(const char* name, const char* policy_path, std::string* why);
// Where a domain lives: <runtime dir>/domain-<16 hex digits hashing key>.
std::string domain_dir(const std::string& runtime_dir, const std::string& key);

// How long a domain operation waits for the lock before giving up (the
// holder is stopped or stuck; a dead one releases it at once).
inline constexpr int kLockTimeoutMs = 2000;

// A process's view of one mapped domain.
class Domain {
 public:
  // Makes dir (0700) and maps its arena for key, creating it if needed, and
  // checks it whole under its lock. nullptr and *why when refused.
  static Domain* open(const std::string& dir, const std::string& key, std::string* why) noexcept;
  ~Domain();
  Domain(const Domain&) = delete;
  Domain& operator=(const Domain&) = delete;

  // Registers pid as a member (see member_join). Returns 0 or -errno.
  // A fork child passes its parent: it then holds what the parent holds in
  // the shared maps (sock_holders_inherit), under the same lock.
  int join(pid_t pid, uint64_t start_time, const std::string& policy, const char* comm,
           bool fresh = false, const Holder* parent = nullptr) noexcept;
  // Runs op(arena, ctx) under the lock, as every operation: 0 or -errno; a
  // corrupt arena (-EUCLEAN) fails the domain closed.
  int run(int (*op)(Arena& arena, void* ctx), void* ctx) noexcept;
  // The live members, dead ones reaped first. 0 or -errno.
  int members(std::vector<Member>* out) noexcept;

  const std::string& key() const noexcept { return key_; }
  const std::string& dir() const noexcept { return dir_; }
  uint64_t generation() const noexcept;
  // Set once the domain failed closed: every later operation returns -EUCLEAN.
  bool failed() const noexcept { return failed_.load(std::memory_order_acquire); }
  // What went wrong (after a failed operation, or failed()).
  std::string why() const;

 private:
  Domain(std::string dir, std::string key, MappedFile file) noexcept;
  // Runs op() under the lock, after checking the file and the header and
  // repairing after a dead owner; a corrupt domain fails closed.
  template <typename Op>
  int locked(Op&& op) noexcept;
  int fail(const char* what) noexcept;

  std::string dir_, key_, path_;
  MappedFile file_;
  Arena arena_;
  bool opened_ = false;  // open() logs nothing: its caller says why it failed
  std::atomic<bool> failed_{false};
  char why_[512] = "";
};

// The process's own domain, from SOCKSHIM_DOMAIN or the loaded policy
// (policy_path, nullptr if none): at start-up, which is also after an exec.
void attach(const std::string& runtime_dir, const char* policy_path) noexcept;
// Just before fork(), in the forking thread: notes the time for the child.
void before_fork() noexcept;
// In a fork child: joins the parent's domain as a member of its own.
void after_fork_child() noexcept;

// The process's attached domain, or nullptr; and the process as a holder of
// sockets (pid and start time, no fd).
Domain* own_domain() noexcept;
Holder own_holder() noexcept;

// The process's domain as `sockshim ps` shows it.
struct DomainState {
  std::string key;  // "" when the process has no domain
  std::string dir;
  std::string error;  // why the process runs without it, "" when attached
  uint64_t generation = 0;
  std::vector<Member> members;
};
DomainState domain_state();

}  // namespace sockshim::domain
