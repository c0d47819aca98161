// The policy a reload published for its whole domain (in the arena; the
// process's side is domain_policy.h): its path and text in
// the arena, with a generation that every member compares with the one it
// runs (one atomic load, no lock). docs/domains.md "Reload for the domain".
//
// Layout: header()->policy -> PolicyRec (made once, never freed, so that a
// member may keep a pointer to its generation) -> one blob block, "PATH\0TEXT",
// replaced with one store under the lock before the generation is bumped.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/domain/arena.h"

namespace sockshim::domain {

struct PolicyRec {
  uint64_t magic;
  std::atomic<uint64_t> gen;  // 0: nothing published yet
  uint64_t blob;              // "PATH\0TEXT", 0: none
  uint64_t path_len, text_len;
};

// Under the arena's lock. The record (made if create), or nullptr (*err).
PolicyRec* policy_rec(Arena& arena, bool create, int* err) noexcept;
// Publishes path and text as the next generation (*gen): 0 or -errno.
int policy_publish(Arena& arena, std::string_view path, std::string_view text,
                   uint64_t* gen) noexcept;
// The published policy: 0 (gen 0 when none), -ENOMEM or -EUCLEAN.
int policy_read(Arena& arena, uint64_t* gen, std::string* path, std::string* text) noexcept;
// Checks the record and appends its blocks to *keep; false with why() set.
bool domain_policy_check(Arena& arena, std::vector<uint64_t>* keep) noexcept;

}  // namespace sockshim::domain
