// The redirect topology of the send and receive tests (test_sockmap's): pair
// a carries the traffic the program sees, pair b holds the redirect target.
#pragma once

#include "test/support/loopback.h"

namespace test_support {

enum class End { c, p };  // a pair's connecting end or its accepted end

struct RedirectPairs {
  LoopbackPair a, b;

  // Connects both pairs; false (errno set) when one fails.
  bool connect() { return a.connect() && b.connect(); }

  // a's `source` end into `map` (the program's: "tx" for sk_msg, "rx" for
  // sk_skb) and b's `target` end into "redir", both at key 0, through the
  // shim's C API (redirect.cc: link it only where that API is). 0, or the
  // first -errno.
  int insert(const char* map, End source, End target) const;
};

}  // namespace test_support
