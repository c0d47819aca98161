#include "test/support/redirect.h"

#include <cstdint>

#include "shim/sockshim.h"

namespace test_support {
namespace {

int fd_of(const LoopbackPair& pair, End end) {
  return end == End::c ? pair.c : pair.p;
}

int insert_at_0(const char* map, int fd) {
  const uint32_t key = 0;
  const uint64_t value = static_cast<uint64_t>(fd);
  return sockshim_map_update_elem(map, &key, &value, 0);
}

}  // namespace

int RedirectPairs::insert(const char* map, End source, End target) const {
  if (int r = insert_at_0(map, fd_of(a, source))) return r;
  return insert_at_0("redir", fd_of(b, target));
}

}  // namespace test_support
