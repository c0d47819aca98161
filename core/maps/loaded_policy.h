// The policy a process runs: its compiled programs and the maps built from it.
// Loaded once at start-up (and swapped by reload). An installed policy is never
// freed while the process runs (a reload retires the one it replaces), so its
// programs outlive every run that started under them and readers need no
// reference count: the pointers handed out below hold none.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/maps/map_table.h"
#include "policy/policy.h"

namespace sockshim {

class BpfMap;

struct LoadedPolicy {
  std::string path;
  std::unique_ptr<policy::Policy> policy;
  std::shared_ptr<MapTable> maps;
  std::vector<BpfMap*> map_by_index;  // policy->maps[i] -> its map, for the helpers
  // A bpf() program's (core/bpfsys): the maps map_by_index names, which live
  // as long as it does; its policy has the program and no maps.
  std::vector<std::shared_ptr<BpfMap>> held_maps;
};

// null when no policy is loaded. Lock-free: one atomic load.
std::shared_ptr<const LoadedPolicy> current_policy() noexcept;

// In a fork child: the locks another thread may have held at the fork.
void loaded_policy_after_fork_child() noexcept;

// The policy prog belongs to: the current one, or one a reload replaced while
// a run of prog was starting. Its maps are the ones prog's map indices mean.
std::shared_ptr<const LoadedPolicy> policy_of(const policy::Program* prog) noexcept;

// Keeps lp (a bpf() program's, see held_maps) for the life of the process,
// as a replaced policy is kept: once attached, its program may run at any
// time, and policy_of finds lp for it.
void keep_program_policy(std::shared_ptr<const LoadedPolicy> lp) noexcept;

// Loads and validates path, builds its maps and installs both. On failure
// nothing changes and *errors holds one line per problem ("FILE:LINE:COL:
// POINTER: MESSAGE").
bool load_policy(const std::string& path, std::vector<std::string>* errors) noexcept;

// Drops the policy and its maps (their sockets leave them), as freeing every
// map does in the kernel. For tests that free maps between scenarios: unlike a
// reload it frees the policy, so no program of it may be running.
void unload_policy() noexcept;

// sockshim reload: validates path and builds its maps first; only then swaps.
// Maps that keep their definition keep their sockets; the others are emptied.
// Every psock then runs the programs of the maps it is still in, from its next
// message on; a run already going finishes under the old program, which stays
// allocated with its (emptied) maps. On failure nothing changes. *kept names the
// maps that kept their sockets. In a domain the text is first published as the
// domain's policy (*domain_gen: its generation; refused if the domain cannot
// take it), which every other member then runs (adopt_domain_policy).
bool reload_policy(const std::string& path, std::vector<std::string>* errors,
                   std::vector<std::string>* kept, uint64_t* domain_gen = nullptr) noexcept;

// Runs the domain's published policy if it is newer than the one the process
// runs (a reload in another member): compiles its text and swaps it in as
// reload_policy does. true when it runs it (or there is none); false with
// *errors when it cannot (the old policy stays). *domain_gen: the
// generation published.
bool adopt_domain_policy(std::vector<std::string>* errors, std::vector<std::string>* kept,
                         uint64_t* domain_gen) noexcept;
// At start-up: the process runs its own policy file, whatever an earlier
// reload published in its domain (which may outlive every process that ran
// it); only later reloads change it.
void domain_policy_baseline() noexcept;
// Where no lock is held (a send, a socket's state change): one
// atomic load, and adopt_domain_policy when the domain's policy is newer.
void domain_policy_sync() noexcept;

}  // namespace sockshim
