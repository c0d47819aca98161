// Any bytes as a policy file: the loader must never crash, and a loaded policy
// must satisfy what core relies on (stable programs, valid map indices).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sockshim::policy;
  const LoadResult r = load_policy_text({reinterpret_cast<const char*>(data), size});
  if (r.ok() == !r.errors.empty()) abort();
  for (const LoadError& e : r.errors) {
    if (e.message.empty()) abort();
    (void)e.format("fuzz");
  }
  if (!r.ok()) return 0;
  const Policy& p = *r.policy;
  for (const Attachment& a : p.attach)
    if (a.map >= p.maps.size() || !a.program) abort();
  for (const MapSpec& m : p.maps)
    if (m.type == MapType::sockhash && (m.key.empty() || m.key_size > 512)) abort();
  return 0;
}
