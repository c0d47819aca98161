// bpf() as a libbpf loader uses it: maps of the emulated types and their
// errors, fds that dup and close like the kernel's, and a clang-built object
// through bpf_object__open_file + bpf_object__load. Each line is a check's
// outcome; run as root on the kernel and as an ordinary user under the shim,
// the lines must be the same (test_bpf_syscall.py). A check that fails its own
// expectation prints "FAIL" and the exit status is 1.
//
// usage: bpf_syscall_probe OBJECT kernel|shim
//   shim: also the commands the emulation refuses as from an unprivileged caller.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

static int failures;

static void line(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  putchar('\n');
}

// A libbpf call's outcome: "0" or "-1 ENAME" (libbpf 1.x returns -errno and sets errno).
static const char* outcome(int r) {
  static char buf[64];
  if (r >= 0) return "0";
  snprintf(buf, sizeof buf, "-1 %s", strerrorname_np(errno));
  return buf;
}

static void expect(const char* what, int r, const char* want) {
  const char* got = outcome(r);
  line("%s: %s%s", what, got, strcmp(got, want) == 0 ? "" : " FAIL");
  if (strcmp(got, want) != 0) failures++;
}

static void check(const char* what, int ok) {
  line("%s: %s", what, ok ? "ok" : "FAIL");
  if (!ok) failures++;
}

static long sys_bpf(int cmd, void* attr, unsigned size) {
  return syscall(__NR_bpf, cmd, attr, size);
}

static int map_create(enum bpf_map_type type, const char* name, uint32_t key, uint32_t value,
                      uint32_t max, uint32_t flags) {
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = flags);
  return bpf_map_create(type, name, key, value, max, &opts);
}

static uint64_t cookie_of(int fd) {
  uint64_t c = 0;
  socklen_t len = sizeof c;
  getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len);
  return c;
}

// A connected TCP pair on 127.0.0.1: *client and *server.
static void tcp_pair(int* client, int* server) {
  int l = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof a;
  if (bind(l, (struct sockaddr*)&a, sizeof a) || listen(l, 1) ||
      getsockname(l, (struct sockaddr*)&a, &len)) {
    perror("listen");
    exit(1);
  }
  *client = socket(AF_INET, SOCK_STREAM, 0);
  if (connect(*client, (struct sockaddr*)&a, sizeof a)) {
    perror("connect");
    exit(1);
  }
  *server = accept(l, NULL, NULL);
  close(l);
}

static void sockhash(void) {
  int client, server;
  tcp_pair(&client, &server);
  int m = map_create(BPF_MAP_TYPE_SOCKHASH, "probe_sockhash", 4, 8, 4, 0);
  check("sockhash created", m >= 3);
  uint32_t key = 7;
  uint64_t value = (uint64_t)server;
  expect("sockhash update (connected tcp)", bpf_map_update_elem(m, &key, &value, BPF_ANY), "0");
  expect("sockhash update NOEXIST again", bpf_map_update_elem(m, &key, &value, BPF_NOEXIST),
         "-1 EEXIST");
  uint64_t got = 0;
  expect("sockhash lookup", bpf_map_lookup_elem(m, &key, &got), "0");
  check("sockhash lookup gives the socket cookie", got == cookie_of(server) && got != 0);
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  value = (uint64_t)listener;
  expect("sockhash update (unbound tcp)", bpf_map_update_elem(m, &key, &value, BPF_ANY),
         "-1 EOPNOTSUPP");
  expect("sockhash delete", bpf_map_delete_elem(m, &key), "0");
  expect("sockhash lookup after delete", bpf_map_lookup_elem(m, &key, &got), "-1 ENOENT");
  expect("sockhash delete again", bpf_map_delete_elem(m, &key), "-1 ENOENT");

  int m4 = map_create(BPF_MAP_TYPE_SOCKMAP, "probe_sockmap", 4, 4, 2, 0);
  uint32_t fd32 = (uint32_t)client;
  key = 1;
  expect("sockmap update", bpf_map_update_elem(m4, &key, &fd32, BPF_ANY), "0");
  expect("sockmap lookup, 4-byte values", bpf_map_lookup_elem(m4, &key, &got), "-1 ENOSPC");
  key = 2;
  expect("sockmap update out of range", bpf_map_update_elem(m4, &key, &fd32, BPF_ANY), "-1 E2BIG");
  close(m4);
  close(m);
  close(listener);
  close(client);
  close(server);
}

static void array_mmap(void) {
  // libbpf moves a map fd below 3 up with F_DUPFD_CLOEXEC and closes the
  // original: with stdin closed the map is created at 0.
  int saved_stdin = dup(0);
  close(0);
  int m = map_create(BPF_MAP_TYPE_ARRAY, "probe_array", 4, 8, 4, BPF_F_MMAPABLE);
  dup2(saved_stdin, 0);
  close(saved_stdin);
  check("mmapable array created, moved above 2", m >= 3);
  size_t size = (size_t)sysconf(_SC_PAGESIZE);
  uint64_t* p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m, 0);
  check("mmap of the array", p != MAP_FAILED);
  if (p == MAP_FAILED) return;
  uint32_t key = 2;
  uint64_t v = 0;
  expect("array lookup", bpf_map_lookup_elem(m, &key, &v), "0");
  check("array starts zeroed", v == 0);
  p[2] = 0x1122334455667788ull;
  expect("array lookup after a write through the mapping", bpf_map_lookup_elem(m, &key, &v), "0");
  check("lookup sees the mapping's write", v == 0x1122334455667788ull);
  key = 1;
  v = 99;
  expect("array update", bpf_map_update_elem(m, &key, &v, BPF_ANY), "0");
  check("the mapping sees the update", p[1] == 99);
  expect("array update NOEXIST", bpf_map_update_elem(m, &key, &v, BPF_NOEXIST), "-1 EEXIST");
  key = 4;
  expect("array update out of range", bpf_map_update_elem(m, &key, &v, BPF_ANY), "-1 E2BIG");
  expect("array lookup out of range", bpf_map_lookup_elem(m, &key, &v), "-1 ENOENT");
  expect("array delete", bpf_map_delete_elem(m, &key), "-1 EINVAL");
  uint32_t next = 99;
  expect("array get_next_key NULL", bpf_map_get_next_key(m, NULL, &next), "0");
  check("array first key is 0", next == 0);
  key = 3;
  expect("array get_next_key last", bpf_map_get_next_key(m, &key, &next), "-1 ENOENT");
  munmap(p, size);
  close(m);
  expect("lookup on the closed map fd", bpf_map_lookup_elem(m, &key, &v), "-1 EBADF");
}

static int cmp_u32(const void* a, const void* b) {
  uint32_t x = *(const uint32_t*)a, y = *(const uint32_t*)b;
  return x < y ? -1 : x > y;
}

static void hash(void) {
  int m = map_create(BPF_MAP_TYPE_HASH, "probe_hash", 4, 8, 2, 0);
  check("hash created", m >= 3);
  uint32_t k1 = 1, k2 = 2, k3 = 3;
  uint64_t v = 10, got = 0;
  expect("hash update k1 NOEXIST", bpf_map_update_elem(m, &k1, &v, BPF_NOEXIST), "0");
  expect("hash update k1 NOEXIST again", bpf_map_update_elem(m, &k1, &v, BPF_NOEXIST), "-1 EEXIST");
  expect("hash update k2 EXIST", bpf_map_update_elem(m, &k2, &v, BPF_EXIST), "-1 ENOENT");
  v = 20;
  expect("hash update k2 ANY", bpf_map_update_elem(m, &k2, &v, BPF_ANY), "0");
  expect("hash update k3 when full", bpf_map_update_elem(m, &k3, &v, BPF_ANY), "-1 E2BIG");
  v = 11;
  expect("hash update k1 EXIST when full", bpf_map_update_elem(m, &k1, &v, BPF_EXIST), "0");
  expect("hash lookup k1", bpf_map_lookup_elem(m, &k1, &got), "0");
  check("hash k1 holds the replaced value", got == 11);
  expect("hash update flags 8", bpf_map_update_elem(m, &k1, &v, 8), "-1 EINVAL");
  expect("hash update BPF_F_LOCK", bpf_map_update_elem(m, &k1, &v, BPF_F_LOCK), "-1 EINVAL");
  uint32_t keys[4], n = 0, next;
  const uint32_t* prev = NULL;
  int r;
  while (n < 4 && (r = bpf_map_get_next_key(m, prev, &next)) == 0) {
    keys[n] = next;
    prev = &keys[n++];
  }
  expect("hash get_next_key at the end", r, "-1 ENOENT");
  qsort(keys, n, sizeof keys[0], cmp_u32);
  check("hash iteration visits k1 and k2 once", n == 2 && keys[0] == 1 && keys[1] == 2);
  expect("hash delete k1", bpf_map_delete_elem(m, &k1), "0");
  expect("hash delete k1 again", bpf_map_delete_elem(m, &k1), "-1 ENOENT");
  expect("hash lookup k1 deleted", bpf_map_lookup_elem(m, &k1, &got), "-1 ENOENT");
  expect("hash update k3 after a delete", bpf_map_update_elem(m, &k3, &v, BPF_NOEXIST), "0");

  struct bpf_map_info info;
  memset(&info, 0, sizeof info);
  uint32_t len = sizeof info;
  expect("map info", bpf_obj_get_info_by_fd(m, &info, &len), "0");
  line("map info: type %u key %u value %u max %u flags %#x name %s id>0 %d len %u", info.type,
       info.key_size, info.value_size, info.max_entries, info.map_flags, info.name, info.id > 0,
       len);
  expect("freeze", bpf_map_freeze(m), "0");
  expect("update after freeze", bpf_map_update_elem(m, &k1, &v, BPF_ANY), "-1 EPERM");
  expect("delete after freeze", bpf_map_delete_elem(m, &k2), "-1 EPERM");
  expect("lookup after freeze", bpf_map_lookup_elem(m, &k2, &got), "0");
  expect("freeze again", bpf_map_freeze(m), "-1 EPERM");
  int dup_fd = fcntl(m, F_DUPFD_CLOEXEC, 3);
  close(m);
  expect("lookup through a dup after closing the original", bpf_map_lookup_elem(dup_fd, &k2, &got),
         "0");
  check("the dup sees the same map", got == 20);
  close(dup_fd);
  expect("info on a closed fd", bpf_obj_get_info_by_fd(dup_fd, &info, &len), "-1 EBADFD");
}

static void create_errors(void) {
  expect("array key_size 8", map_create(BPF_MAP_TYPE_ARRAY, "a", 8, 8, 1, 0), "-1 EINVAL");
  expect("hash value_size 0", map_create(BPF_MAP_TYPE_HASH, "h", 4, 0, 1, 0), "-1 EINVAL");
  expect("sockmap NO_PREALLOC", map_create(BPF_MAP_TYPE_SOCKMAP, "s", 4, 8, 1, BPF_F_NO_PREALLOC),
         "-1 EINVAL");
  expect("sockhash key 513", map_create(BPF_MAP_TYPE_SOCKHASH, "s", 513, 8, 1, 0), "-1 E2BIG");
  expect("name with a dash", map_create(BPF_MAP_TYPE_ARRAY, "a-b", 4, 8, 1, 0), "-1 EINVAL");
  expect("RDONLY and WRONLY",
         map_create(BPF_MAP_TYPE_ARRAY, "a", 4, 8, 1, BPF_F_RDONLY | BPF_F_WRONLY), "-1 EINVAL");
  expect("map type 200", map_create(200, "a", 4, 8, 1, 0), "-1 EINVAL");
  int ro = map_create(BPF_MAP_TYPE_ARRAY, "ro", 4, 8, 1, BPF_F_RDONLY);
  uint32_t key = 0;
  uint64_t v = 1;
  expect("update of a BPF_F_RDONLY map", bpf_map_update_elem(ro, &key, &v, BPF_ANY), "-1 EPERM");
  expect("lookup of a BPF_F_RDONLY map", bpf_map_lookup_elem(ro, &key, &v), "0");
  close(ro);
  int sock = socket(AF_INET, SOCK_STREAM, 0);
  expect("lookup on a socket fd", bpf_map_lookup_elem(sock, &key, &v), "-1 EINVAL");
  close(sock);
}

static void attr_sizes(void) {
  static unsigned char big[4097];
  memset(big, 0, sizeof big);
  big[4095] = 1;
  errno = 0;
  expect("attr of a page with a non-zero last byte", (int)sys_bpf(BPF_MAP_CREATE, big, 4096),
         "-1 E2BIG");
  expect("attr larger than a page", (int)sys_bpf(BPF_MAP_CREATE, big, 4097), "-1 E2BIG");
  expect("unknown command 999", (int)sys_bpf(999, big, 8), "-1 EINVAL");
  // A short attr: the bytes after size are not read, however set.
  union bpf_attr a;
  memset(&a, 0xff, sizeof a);
  a.map_type = BPF_MAP_TYPE_ARRAY;
  a.key_size = 4;
  a.value_size = 8;
  a.max_entries = 1;
  a.map_flags = 0;
  a.inner_map_fd = 0;
  a.numa_node = 0;
  memset(a.map_name, 0, sizeof a.map_name);
  int fd = (int)sys_bpf(BPF_MAP_CREATE, &a, offsetof(union bpf_attr, map_ifindex));
  check("short attr, garbage beyond it ignored", fd >= 0);
  if (fd >= 0) close(fd);
}

static void syscall_passthrough(void) {
  check("syscall(SYS_gettid) passes through", syscall(SYS_gettid) == gettid());
  int word = 0;
  check("syscall(SYS_futex, FUTEX_WAKE) passes through",
        syscall(SYS_futex, &word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0) == 0);
  errno = 0;
  check("syscall(SYS_close, -1) says EBADF", syscall(SYS_close, -1) == -1 && errno == EBADF);
}

static struct bpf_map* must_find(struct bpf_object* obj, const char* suffix) {
  struct bpf_map* m;
  bpf_object__for_each_map(m, obj) {
    const char* n = bpf_map__name(m);
    size_t ln = strlen(n), ls = strlen(suffix);
    if (ln >= ls && strcmp(n + ln - ls, suffix) == 0) return m;
  }
  line("no map %s: FAIL", suffix);
  exit(1);
}

static void libbpf_object(const char* path) {
  struct bpf_object* obj = bpf_object__open_file(path, NULL);
  check("bpf_object__open_file", obj != NULL);
  if (!obj) return;
  expect("bpf_object__load", bpf_object__load(obj), "0");
  struct bpf_program* prog = bpf_object__find_program_by_name(obj, "keep_all");
  check("the socket filter has an fd", prog && bpf_program__fd(prog) >= 3);
  int data = bpf_map__fd(must_find(obj, ".data"));
  int bss = bpf_map__fd(must_find(obj, ".bss"));
  int rodata = bpf_map__fd(must_find(obj, ".rodata"));
  int counts = bpf_map__fd(must_find(obj, "counts"));
  int sock_hash = bpf_map__fd(must_find(obj, "sock_hash"));
  check("every map has an fd",
        data >= 3 && bss >= 3 && rodata >= 3 && counts >= 3 && sock_hash >= 3);
  size_t size = (size_t)sysconf(_SC_PAGESIZE);
  int* p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, data, 0);
  check("mmap of .data", p != MAP_FAILED);
  if (p != MAP_FAILED) {
    check(".data holds the object's initial value", p[0] == 42);
    p[0] = 43;
    uint32_t zero = 0;
    int v = 0;
    expect(".data lookup", bpf_map_lookup_elem(data, &zero, &v), "0");
    check(".data lookup sees the mapping's write", v == 43);
    munmap(p, size);
  }
  uint32_t zero = 0, limit = 0;
  expect(".rodata lookup", bpf_map_lookup_elem(rodata, &zero, &limit), "0");
  check(".rodata holds the constant", limit == 7);
  expect(".rodata update (frozen)", bpf_map_update_elem(rodata, &zero, &limit, BPF_ANY),
         "-1 EPERM");
  errno = 0;
  void* w = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, rodata, 0);
  line("writable mmap of .rodata: %s", w == MAP_FAILED ? strerrorname_np(errno) : "mapped");
  void* r = mmap(NULL, size, PROT_READ, MAP_SHARED, rodata, 0);
  check("read-only mmap of .rodata", r != MAP_FAILED && *(uint32_t*)r == 7);
  if (r != MAP_FAILED) munmap(r, size);
  struct bpf_map_info info;
  memset(&info, 0, sizeof info);
  uint32_t len = sizeof info;
  expect(".rodata info", bpf_obj_get_info_by_fd(rodata, &info, &len), "0");
  line(".rodata info: type %u key %u value %u max %u flags %#x name %s", info.type, info.key_size,
       info.value_size, info.max_entries, info.map_flags, info.name);
  uint32_t key = 5;
  uint64_t value = 500, got = 0;
  expect("object hash update", bpf_map_update_elem(counts, &key, &value, BPF_ANY), "0");
  expect("object hash lookup", bpf_map_lookup_elem(counts, &key, &got), "0");
  check("object hash value", got == 500);
  bpf_object__close(obj);
  expect("a map fd after bpf_object__close", bpf_map_lookup_elem(counts, &key, &got), "-1 EBADF");
}

static void shim_only(void) {
  union bpf_attr a;
  memset(&a, 0, sizeof a);
  expect("BPF_PROG_GET_NEXT_ID (not emulated)", (int)sys_bpf(BPF_PROG_GET_NEXT_ID, &a, sizeof a),
         "-1 EPERM");
  expect("BPF_OBJ_GET (not emulated)", (int)sys_bpf(BPF_OBJ_GET, &a, sizeof a), "-1 EPERM");
  expect("BPF_BTF_LOAD", (int)sys_bpf(BPF_BTF_LOAD, &a, sizeof a), "-1 EPERM");
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s OBJECT kernel|shim\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  syscall_passthrough();
  sockhash();
  array_mmap();
  hash();
  create_errors();
  attr_sizes();
  libbpf_object(argv[1]);
  if (strcmp(argv[2], "shim") == 0) shim_only();
  return failures ? 1 : 0;
}
