// Keeps errno across a scope: what the shim does around a call (look-ups,
// logging, bookkeeping) must not change the errno the program reads after it.
#pragma once

#include <errno.h>

namespace sockshim {

class ErrnoSaver {
 public:
  ErrnoSaver() noexcept : saved_(errno) {}
  ~ErrnoSaver() { errno = saved_; }
  ErrnoSaver(const ErrnoSaver&) = delete;
  ErrnoSaver& operator=(const ErrnoSaver&) = delete;

  // The errno the scope began with.
  int value() const noexcept { return saved_; }

 private:
  int saved_;
};

}  // namespace sockshim
