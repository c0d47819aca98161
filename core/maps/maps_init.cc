#include "core/maps/maps_init.h"

#include "core/maps/sk_storage.h"
#include "core/maps/sock_map_base.h"
#include "core/maps/sock_ops.h"
#include "core/sock/sock_hooks.h"

namespace sockshim {

void maps_init() noexcept {
  g_sock_hooks.sock_ops.store(sock_ops, std::memory_order_relaxed);
  g_sock_hooks.map_close.store(sock_map_close, std::memory_order_relaxed);
  g_sock_hooks.storage_free.store(sk_storage_free, std::memory_order_relaxed);
}

}  // namespace sockshim
