#include "core/maps/map_create.h"

#include <errno.h>

#include <new>

#include "core/maps/array_map.h"
#include "core/maps/hash_map.h"
#include "core/maps/sk_storage.h"
#include "core/maps/sock_hash.h"
#include "core/maps/sock_map.h"

namespace sockshim {

namespace {

template <typename M>
int adopt(int r, std::unique_ptr<M> m, std::shared_ptr<BpfMap>* out) {
  if (r) return r;
  *out = std::move(m);
  return 0;
}

int make(const policy::MapSpec& spec, int memfd, std::shared_ptr<BpfMap>* out) {
  switch (spec.type) {
    case policy::MapType::sockmap:
      *out = std::make_shared<SockMap>(spec);
      return 0;
    case policy::MapType::sockhash:
      *out = std::make_shared<SockHash>(spec);
      return 0;
    case policy::MapType::sk_storage:
      *out = std::make_shared<SkStorage>(spec);
      return 0;
    case policy::MapType::array: {
      std::unique_ptr<ArrayMap> m;
      int r = ArrayMap::create(spec, memfd, &m);
      return adopt(r, std::move(m), out);
    }
    case policy::MapType::hash: {
      std::unique_ptr<HashMap> m;
      int r = HashMap::create(spec, &m);
      return adopt(r, std::move(m), out);
    }
  }
  return -EINVAL;
}

}  // namespace

int map_create(const policy::MapSpec& spec, int memfd, std::shared_ptr<BpfMap>* out) noexcept {
  if (int r = map_create_check(spec)) return r;
  bool sock = spec.type == policy::MapType::sockmap || spec.type == policy::MapType::sockhash;
  if (sock && spec.max_entries > policy::kMaxMapEntries) return -ENOMEM;
  try {
    return make(spec, memfd, out);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
}

}  // namespace sockshim
