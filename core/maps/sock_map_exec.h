// An exec'd image's sockets back in its maps: the domain kept each entry
// whose socket the exec left open (core/domain/domain.h, after an exec), and
// the new image puts it back in the map of the same definition, with a psock
// running the policy's programs, as before the exec (the kernel's map never
// noticed the exec).
#pragma once

namespace sockshim {

// At start-up, after the policy is loaded and the domain attached. Returns how
// many entries went back in.
int sock_maps_readopt() noexcept;

}  // namespace sockshim
