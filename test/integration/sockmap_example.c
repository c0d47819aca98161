// The user-space example of the kernel's Documentation/bpf/map_sockmap.rst,
// create_sample_sockmap (a SOCKMAP, a stream parser and a stream verdict
// attached to it, a socket inserted), with the programs of
// sockmap_example.bpf.c loaded by libbpf, then bytes sent through it: a frame
// starting 'D' is dropped, 'R' redirected to the ingress of another socket,
// any other passed. Then the errnos of BPF_PROG_ATTACH / BPF_PROG_DETACH on a
// sockmap and on a cgroup, and the sockops program attached to a cgroup fd
// inserting sockets. Each line is a check; "FAIL" marks one that failed and
// the exit status is then 1.
//
// usage: sockmap_example OBJECT CGROUP_DIR
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

static int failures;

static const char* outcome(int r) {
  static char buf[64];
  if (r >= 0) return "0";
  const char* name = strerrorname_np(errno);
  if (name)
    snprintf(buf, sizeof buf, "-1 %s", name);
  else
    snprintf(buf, sizeof buf, "-1 %d", errno);  // 524: the kernel's ENOTSUPP
  return buf;
}

static void expect(const char* what, int r, const char* want) {
  const char* got = outcome(r);
  int ok = strcmp(got, want) == 0;
  printf("%s: %s%s\n", what, got, ok ? "" : " FAIL");
  if (!ok) failures++;
}

static void check(const char* what, int ok) {
  printf("%s: %s\n", what, ok ? "ok" : "FAIL");
  if (!ok) failures++;
}

// As in map_sockmap.rst.
int create_sample_sockmap(int sock, int parse_prog_fd, int verdict_prog_fd) {
  int index = 0;
  int map_fd, ret;

  map_fd = bpf_map_create(BPF_MAP_TYPE_SOCKMAP, NULL, sizeof(int), sizeof(int), 1, NULL);
  if (map_fd < 0) {
    fprintf(stderr, "Failed to create sockmap: %s\n", strerror(errno));
    return -1;
  }

  ret = bpf_prog_attach(parse_prog_fd, map_fd, BPF_SK_SKB_STREAM_PARSER, 0);
  if (ret) {
    fprintf(stderr, "Failed to attach stream parser: %s\n", strerror(errno));
    return -1;
  }

  ret = bpf_prog_attach(verdict_prog_fd, map_fd, BPF_SK_SKB_STREAM_VERDICT, 0);
  if (ret) {
    fprintf(stderr, "Failed to attach stream verdict: %s\n", strerror(errno));
    return -1;
  }

  ret = bpf_map_update_elem(map_fd, &index, &sock, BPF_NOEXIST);
  if (ret) {
    fprintf(stderr, "Failed to update sockmap: %s\n", strerror(errno));
    return -1;
  }

  return map_fd;
}

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

static uint64_t cookie_of(int fd) {
  uint64_t c = 0;
  socklen_t len = sizeof c;
  getsockopt(fd, SOL_SOCKET, SO_COOKIE, &c, &len);
  return c;
}

// Exactly 4 bytes from fd within 10 s, as a string ("" on timeout or error).
static const char* read4(int fd) {
  static char buf[5];
  size_t got = 0;
  while (got < 4) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, 10000) != 1) return "";
    ssize_t n = recv(fd, buf + got, 4 - got, 0);
    if (n <= 0) return "";
    got += (size_t)n;
  }
  buf[4] = '\0';
  return buf;
}

static void send4(int fd, const char* s) {
  if (send(fd, s, 4, 0) != 4) {
    perror("send");
    exit(1);
  }
}

static int prog_fd(struct bpf_object* obj, const char* name) {
  struct bpf_program* p = bpf_object__find_program_by_name(obj, name);
  return p ? bpf_program__fd(p) : -1;
}

static int map_fd(struct bpf_object* obj, const char* name) {
  struct bpf_map* m = bpf_object__find_map_by_name(obj, name);
  return m ? bpf_map__fd(m) : -1;
}

static uint64_t count(int map, uint32_t key) {
  uint64_t v = 0;
  bpf_map_lookup_elem(map, &key, &v);
  return v;
}

// What a loader asks about its programs.
static void prog_info_and_test_run(int verdict, int sockops) {
  struct bpf_prog_info info;
  memset(&info, 0, sizeof info);
  uint32_t ids[4] = {0};
  info.nr_map_ids = 4;
  info.map_ids = (uint64_t)(uintptr_t)ids;
  uint32_t len = sizeof info;
  expect("verdict info", bpf_obj_get_info_by_fd(verdict, &info, &len), "0");
  check("verdict info: SK_SKB, its name, its two maps",
        info.type == BPF_PROG_TYPE_SK_SKB && strcmp(info.name, "prog_verdict") == 0 &&
            info.nr_map_ids == 2 && ids[0] != 0 && ids[1] != 0 && ids[0] != ids[1] && info.id != 0);
  char data[64] = {0};
  LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = data, .data_size_in = sizeof data);
  expect("test run of an SK_SKB program", bpf_prog_test_run_opts(verdict, &run), "-1 524");
  LIBBPF_OPTS(bpf_test_run_opts, run2);
  expect("test run of a SOCK_OPS program", bpf_prog_test_run_opts(sockops, &run2), "-1 524");
  LIBBPF_OPTS(bpf_test_run_opts, bad, .ctx_size_in = 8);
  expect("test run with ctx_size_in and no ctx_in", bpf_prog_test_run_opts(sockops, &bad),
         "-1 EINVAL");
}

static void traffic(int parser, int verdict, int redir, int verdicts) {
  int a_client, a_server, b_client, b_server;
  tcp_pair(&a_client, &a_server);
  tcp_pair(&b_client, &b_server);
  int map = create_sample_sockmap(a_server, parser, verdict);
  check("create_sample_sockmap", map >= 0);
  if (map < 0) exit(1);
  uint32_t zero = 0;
  expect("redirect target into redir_map", bpf_map_update_elem(redir, &zero, &b_client, BPF_ANY),
         "0");
  send4(a_client, "helo");
  check("a passed frame arrives", strcmp(read4(a_server), "helo") == 0);
  send4(a_client, "Dxxx");
  send4(a_client, "okay");
  check("a dropped frame does not, the next one does", strcmp(read4(a_server), "okay") == 0);
  send4(a_client, "Rxxx");
  check("a redirected frame arrives at the target's ingress", strcmp(read4(b_client), "Rxxx") == 0);
  send4(a_client, "last");
  check("and not at its own socket", strcmp(read4(a_server), "last") == 0);
  check("verdicts counted in the ARRAY map",
        count(verdicts, 0) == 3 && count(verdicts, 1) == 1 && count(verdicts, 2) == 1);

  // The kernel's attach rules.
  expect("skb verdict while a stream verdict is attached",
         bpf_prog_attach(verdict, map, BPF_SK_SKB_VERDICT, 0), "-1 EBUSY");
  expect("SK_SKB program as an sk_msg verdict",
         bpf_prog_attach(verdict, map, BPF_SK_MSG_VERDICT, 0), "-1 EINVAL");
  expect("attach flags on a sockmap",
         bpf_prog_attach(verdict, map, BPF_SK_SKB_STREAM_VERDICT, BPF_F_ALLOW_MULTI), "-1 EINVAL");
  expect("attach again (replaces)", bpf_prog_attach(verdict, map, BPF_SK_SKB_STREAM_VERDICT, 0),
         "0");
  expect("attach to an ARRAY map", bpf_prog_attach(verdict, verdicts, BPF_SK_SKB_STREAM_VERDICT, 0),
         "-1 EOPNOTSUPP");
  expect("attach to a socket fd", bpf_prog_attach(verdict, a_client, BPF_SK_SKB_STREAM_VERDICT, 0),
         "-1 EINVAL");
  expect("attach a map fd as the program", bpf_prog_attach(map, map, BPF_SK_SKB_STREAM_VERDICT, 0),
         "-1 EINVAL");
  expect("attach type no kernel knows", bpf_prog_attach(verdict, map, 10000, 0), "-1 EINVAL");
  expect("detach the parser", bpf_prog_detach2(parser, map, BPF_SK_SKB_STREAM_PARSER), "0");
  expect("detach the parser again", bpf_prog_detach2(parser, map, BPF_SK_SKB_STREAM_PARSER),
         "-1 ENOENT");
  expect("detach the verdict as the parser",
         bpf_prog_detach2(verdict, map, BPF_SK_SKB_STREAM_PARSER), "-1 ENOENT");
  expect("detach the verdict", bpf_prog_detach2(verdict, map, BPF_SK_SKB_STREAM_VERDICT), "0");
  expect("skb verdict once the stream verdict is gone",
         bpf_prog_attach(verdict, map, BPF_SK_SKB_VERDICT, 0), "0");
  expect("stream verdict while an skb verdict is attached",
         bpf_prog_attach(verdict, map, BPF_SK_SKB_STREAM_VERDICT, 0), "-1 EBUSY");
  expect("detach from an ARRAY map", bpf_prog_detach2(verdict, verdicts, BPF_SK_SKB_VERDICT),
         "-1 EOPNOTSUPP");
  close(map);
  close(a_client);
  close(a_server);
  close(b_client);
  close(b_server);
}

static void cgroup_sockops(int sockops, int verdict, int ops_map, int ops_seen, const char* dir) {
  int cg = open(dir, O_RDONLY | O_DIRECTORY);
  check("cgroup directory opened", cg >= 0);
  expect("sockops attach to a cgroup", bpf_prog_attach(sockops, cg, BPF_CGROUP_SOCK_OPS, 0), "0");
  int c, s;
  tcp_pair(&c, &s);
  uint32_t zero = 0;
  uint64_t got = 0;
  expect("the passive socket entered ops_map", bpf_map_lookup_elem(ops_map, &zero, &got), "0");
  check("it is the accepted socket", got == cookie_of(s) && got != 0);
  check("one active and one passive established event",
        count(ops_seen, BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB) == 1 &&
            count(ops_seen, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) == 1);
  expect("an SK_SKB program to a cgroup", bpf_prog_attach(verdict, cg, BPF_CGROUP_SOCK_OPS, 0),
         "-1 EINVAL");
  expect("sockops attach with other flags",
         bpf_prog_attach(sockops, cg, BPF_CGROUP_SOCK_OPS, BPF_F_ALLOW_MULTI), "-1 EPERM");
  expect("sockops attach to a socket fd", bpf_prog_attach(sockops, c, BPF_CGROUP_SOCK_OPS, 0),
         "-1 EBADF");
  expect("sockops detach", bpf_prog_detach2(sockops, cg, BPF_CGROUP_SOCK_OPS), "0");
  expect("sockops detach again", bpf_prog_detach2(sockops, cg, BPF_CGROUP_SOCK_OPS), "-1 ENOENT");
  int c2, s2;
  tcp_pair(&c2, &s2);
  check("no events after detach", count(ops_seen, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) == 1);
  expect("multi attach", bpf_prog_attach(sockops, cg, BPF_CGROUP_SOCK_OPS, BPF_F_ALLOW_MULTI), "0");
  expect("multi attach of the same program",
         bpf_prog_attach(sockops, cg, BPF_CGROUP_SOCK_OPS, BPF_F_ALLOW_MULTI), "-1 EEXIST");
  expect("multi detach", bpf_prog_detach2(sockops, cg, BPF_CGROUP_SOCK_OPS), "0");

  // A link (libbpf's bpf_program__attach_cgroup) holds the program until
  // BPF_LINK_DETACH or the close of its last fd.
  struct bpf_prog_info pi;
  memset(&pi, 0, sizeof pi);
  uint32_t len = sizeof pi;
  bpf_obj_get_info_by_fd(sockops, &pi, &len);
  int link = bpf_link_create(sockops, cg, BPF_CGROUP_SOCK_OPS, NULL);
  check("link create", link >= 0);
  expect("attach without flags beside a link", bpf_prog_attach(sockops, cg, BPF_CGROUP_SOCK_OPS, 0),
         "-1 EPERM");
  expect("link of a sockops program as another attach type",
         bpf_link_create(sockops, cg, BPF_CGROUP_INET_INGRESS, NULL), "-1 EINVAL");
  struct bpf_link_info li;
  memset(&li, 0, sizeof li);
  len = sizeof li;
  expect("link info", bpf_obj_get_info_by_fd(link, &li, &len), "0");
  check("link info: a cgroup link of the sockops program",
        li.type == BPF_LINK_TYPE_CGROUP && li.prog_id == pi.id && pi.id != 0 &&
            li.cgroup.attach_type == BPF_CGROUP_SOCK_OPS && li.cgroup.cgroup_id != 0);
  int c3, s3;
  tcp_pair(&c3, &s3);
  check("the link's program runs", count(ops_seen, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) == 2);
  expect("detach by program does not detach a link",
         bpf_prog_detach2(sockops, cg, BPF_CGROUP_SOCK_OPS), "-1 ENOENT");
  expect("link detach", bpf_link_detach(link), "0");
  int c4, s4;
  tcp_pair(&c4, &s4);
  check("not after link detach", count(ops_seen, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) == 2);
  close(link);
  link = bpf_link_create(sockops, cg, BPF_CGROUP_SOCK_OPS, NULL);
  int c5, s5;
  tcp_pair(&c5, &s5);
  check("a new link's program runs", count(ops_seen, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) == 3);
  close(link);
  int c6, s6;
  tcp_pair(&c6, &s6);
  check("not once its fd is closed", count(ops_seen, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) == 3);
  int fds[] = {c3, s3, c4, s4, c5, s5, c6, s6};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) close(fds[i]);
  close(c);
  close(s);
  close(c2);
  close(s2);
  close(cg);
}

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s OBJECT CGROUP_DIR\n", argv[0]);
    return 2;
  }
  struct bpf_object* obj = bpf_object__open_file(argv[1], NULL);
  if (!obj || bpf_object__load(obj)) {
    fprintf(stderr, "loading %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  int parser = prog_fd(obj, "prog_parser"), verdict = prog_fd(obj, "prog_verdict");
  int sockops = prog_fd(obj, "prog_sockops");
  check("programs loaded", parser >= 0 && verdict >= 0 && sockops >= 0);
  prog_info_and_test_run(verdict, sockops);
  traffic(parser, verdict, map_fd(obj, "redir_map"), map_fd(obj, "verdicts"));
  cgroup_sockops(sockops, verdict, map_fd(obj, "ops_map"), map_fd(obj, "ops_seen"), argv[2]);
  bpf_object__close(obj);
  return failures ? 1 : 0;
}
