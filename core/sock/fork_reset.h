// Locks in a fork child. A lock that another thread held at fork() stays held
// for ever in the child, where that thread does not exist, so the child's
// atfork handler releases it. Writing every lock of a table would copy the
// whole table, page by page (copy-on-write): a fork child under a policy took
// ~300 page faults for it, more than the rest of its life. Only a held lock is
// written; reading a page copies nothing.
#pragma once

#include <pthread.h>

#include <mutex>
#include <new>

namespace sockshim {

// Re-initialises m if it is held. Reads glibc's lock word (0: free), which is
// what a std::mutex is there; the shim needs glibc anyway. Only in a fork
// child, where no other thread can take m meanwhile.
inline void fork_reset_if_held(std::mutex& m) noexcept {
  if (reinterpret_cast<pthread_mutex_t*>(m.native_handle())->__data.__lock != 0)
    new (&m) std::mutex();
}

}  // namespace sockshim
