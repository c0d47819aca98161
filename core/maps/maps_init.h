// maps/'s start-up: installs what sock/ runs in maps/ (core/sock/sock_hooks.h):
// the sockops programs, sock_map_close and sk_storage_free. The shim calls it
// first thing at start-up, before a policy can load and so before any socket
// can enter a map, hold storage or meet a sockops program.
#pragma once

namespace sockshim {

void maps_init() noexcept;

}  // namespace sockshim
