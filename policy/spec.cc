#include "policy/spec.h"

namespace sockshim::policy {

uint32_t key_field_size(KeyField f) noexcept {
  switch (f) {
    case KeyField::local_ip6:
    case KeyField::remote_ip6:
      return 16;
    case KeyField::u64:
      return 8;
    default:
      return 4;
  }
}

}  // namespace sockshim::policy
