// Calls io_uring_setup as libuv does (through syscall(), glibc has no wrapper)
// and prints "ring" or the errno name, so a test can see what the shim decided.
#include <errno.h>
#include <linux/io_uring.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
  struct io_uring_params params;
  memset(&params, 0, sizeof params);
  long fd = syscall(__NR_io_uring_setup, 4, &params);
  if (fd >= 0) {
    puts("ring");
    close((int)fd);
    return 0;
  }
  puts(errno == ENOSYS ? "ENOSYS" : strerror(errno));
  return 0;
}
