#include "core/maps/sock_map_exec.h"

#include <cstring>

#include "core/domain/domain_maps.h"
#include "core/maps/map_table.h"
#include "core/maps/sock_map_base.h"
#include "core/sock/log.h"

namespace sockshim {

int sock_maps_readopt() noexcept {
  std::shared_ptr<MapTable> maps = current_maps();
  if (!maps) return 0;
  int n = 0;
  for (const domain::HeldEntry& e : domain::domain_held_entries()) {
    SockMapBase* m = maps->find_sock_map(e.map);
    // A map of another definition is another map (a policy changed between
    // the two images); its entry stays for the processes that have it.
    if (!m || static_cast<uint32_t>(m->type()) != e.type || m->key_size() != e.key_size ||
        m->max_entries() != e.max_entries)
      continue;
    if (int r = m->readopt(e.key.data(), e.fd); r < 0) {
      log::warn("map {}: the socket at fd {} inherited over exec stays out of it: {}", e.map, e.fd,
                strerror(-r));
      continue;
    }
    ++n;
  }
  if (n) log::info("{} map entries taken back after exec", n);
  return n;
}

}  // namespace sockshim
