/* What a fork child of a process with a psock pays in page faults before
 * fork() returns to it: a fork-per-connection server (socat, inetd) forks with
 * its accepted socket in a map, and every page the shim's fork handlers write
 * is a page the kernel copies (copy-on-write) in every child.
 *
 * Forks FORKS children with no psock yet, then puts a UDP socket in map "udp"
 * with the C API (found with dlsym, so the probe also runs without the shim)
 * and forks FORKS more. Each child reports the minor faults it took until
 * fork() returned in it (getrusage) and exits. Prints the two medians, and
 * the faults the insertion itself took in the process (pages it touched for
 * the first time, each one more page table entry every fork copies):
 *   baseline N
 *   the insertion I
 *   with a psock M
 * test_fork_faults.py checks that M stays within a few pages of N, and that
 * I is a few pages, not the psock pool's 64. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define FORKS 15

typedef int (*map_update_fn)(const char*, const void*, const void*, uint64_t);

static int cmp_long(const void* a, const void* b) {
  long x = *(const long*)a, y = *(const long*)b;
  return (x > y) - (x < y);
}

/* The median of the children's faults until fork() returned in them. */
static long child_faults(void) {
  long v[FORKS];
  for (int i = 0; i < FORKS; ++i) {
    int fds[2];
    if (pipe(fds) != 0) exit(1);
    pid_t pid = fork();
    if (pid < 0) exit(1);
    if (pid == 0) {
      struct rusage r;
      getrusage(RUSAGE_SELF, &r);
      long n = r.ru_minflt;
      (void)!write(fds[1], &n, sizeof n);
      _exit(0);
    }
    close(fds[1]);
    if (read(fds[0], &v[i], sizeof v[i]) != sizeof v[i]) exit(1);
    close(fds[0]);
    waitpid(pid, NULL, 0);
  }
  qsort(v, FORKS, sizeof v[0], cmp_long);
  return v[FORKS / 2];
}

int main(void) {
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (s < 0 || bind(s, (struct sockaddr*)&a, sizeof a) != 0) return 1;
  printf("baseline %ld\n", child_faults());
  map_update_fn update;
  *(void**)&update = dlsym(RTLD_DEFAULT, "sockshim_map_update_elem"); /* POSIX's idiom */
  struct rusage before, after;
  getrusage(RUSAGE_SELF, &before);
  if (update) {
    uint32_t key = 0;
    uint64_t value = (uint64_t)s;
    if (update("udp", &key, &value, 0) != 0) {
      printf("FAIL: sockshim_map_update_elem\n");
      return 1;
    }
  } else if (getenv("SOCKSHIM_POLICY")) {
    printf("FAIL: no sockshim_map_update_elem under a policy\n");
    return 1;
  }
  getrusage(RUSAGE_SELF, &after);
  printf("the insertion %ld\n", after.ru_minflt - before.ru_minflt);
  printf("with a psock %ld\n", child_faults());
  return 0;
}
