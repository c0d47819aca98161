// fork: the child's registry and logger are repaired by the pthread_atfork
// handler that ensure_initialised() registers; a fork before our constructor ran
// must still find it registered.
#include <unistd.h>

#include "core/psock/sk_msg_queue.h"
#include "shim/hook.h"

using namespace sockshim;

SOCKSHIM_HOOK pid_t fork() {
  shim::ensure_initialised();
  sk_msg_queue_before_fork();
  return real::fork();
}
