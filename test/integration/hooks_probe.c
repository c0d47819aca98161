// Calls every function libsockshim hooks and prints what each returned: values,
// errno names, fd numbers and received bytes. The shim opens no fds of its own,
// so a run under it must print exactly what a run without it prints.
//
//   hooks_probe all      every hooked function on working sockets
//   hooks_probe errors   failing calls: EBADF, ENOTSOCK, ECONNREFUSED, ...
//
// Built with -O2 -D_FORTIFY_SOURCE=2 so that read/recv/recvfrom/poll/ppoll on
// buffers of known size become __read_chk, __recv_chk, ... as in a real program;
// the plain symbols are called through functions that hide the buffer size.
// Exits 1 when one of its own sanity checks fails.
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures;

// Prints a call's result; errno is read first, before printf can change it.
static long show(const char* what, long r) {
  int err = errno;
  if (r < 0)
    printf("%-40s = %ld %s\n", what, r, strerrorname_np(err));
  else
    printf("%-40s = %ld\n", what, r);
  fflush(stdout);
  return r;
}

// Evaluates a call once, with errno cleared, and prints its result.
#define SHOW(what, expr) show(what, (errno = 0, (long)(expr)))

#define CHECK(cond)                                          \
  do {                                                       \
    if (!(cond)) {                                           \
      printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
      fflush(stdout);                                        \
      ++failures;                                            \
    }                                                        \
  } while (0)

// Sizes read at run time, so the compiler cannot prove them constant and the
// fortified wrappers call the _chk variants.
static volatile size_t g_size16 = 16;
static volatile nfds_t g_nfds1 = 1;

static void show_bytes(const char* what, const char* buf, long n) {
  printf("%-40s : \"%.*s\"\n", what, n > 0 ? (int)n : 0, buf);
  fflush(stdout);
}

// The plain, unfortified entry points: the buffer's size is unknown here.
__attribute__((noinline)) static ssize_t plain_read(int fd, void* buf, size_t n) {
  return read(fd, buf, n);
}
__attribute__((noinline)) static ssize_t plain_recv(int fd, void* buf, size_t n, int flags) {
  return recv(fd, buf, n, flags);
}
__attribute__((noinline)) static ssize_t plain_recvfrom(int fd, void* buf, size_t n, int flags,
                                                        struct sockaddr* a, socklen_t* l) {
  return recvfrom(fd, buf, n, flags, a, l);
}
__attribute__((noinline)) static int plain_poll(struct pollfd* p, nfds_t n, int t) {
  return poll(p, n, t);
}
__attribute__((noinline)) static int plain_ppoll(struct pollfd* p, nfds_t n,
                                                 const struct timespec* t, const sigset_t* s) {
  return ppoll(p, n, t, s);
}

// Waits (bounded) until n bytes are queued on fd, so that every receive below
// returns the same count in every run. FIONREAD goes through the ioctl hook.
static void wait_queued(int fd, int n) {
  for (int i = 0; i < 5000; ++i) {
    int q = 0;
    if (ioctl(fd, FIONREAD, &q) == 0 && q >= n) return;
    usleep(1000);
  }
  printf("FAIL: %d bytes never arrived on fd %d\n", n, fd);
  ++failures;
}

static struct sockaddr_in loopback(unsigned short port) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static unsigned short port_of(int fd) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (getsockname(fd, (struct sockaddr*)&a, &len) != 0) return 0;
  return ntohs(a.sin_port);
}

static int tcp_listener(void) {
  int fd = SHOW("socket(AF_INET, SOCK_STREAM)", socket(AF_INET, SOCK_STREAM, 0));
  struct sockaddr_in a = loopback(0);
  CHECK(bind(fd, (struct sockaddr*)&a, sizeof a) == 0);
  SHOW("listen", listen(fd, 16));
  return fd;
}

static int udp_bound(void) {
  int fd = SHOW("socket(AF_INET, SOCK_DGRAM)", socket(AF_INET, SOCK_DGRAM, 0));
  struct sockaddr_in a = loopback(0);
  CHECK(bind(fd, (struct sockaddr*)&a, sizeof a) == 0);
  return fd;
}

// A temporary file holding text, for sendfile and ENOTSOCK.
static int text_file(const char* text) {
  char path[] = "/tmp/sockshim-probe-XXXXXX";
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  unlink(path);
  CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
  lseek(fd, 0, SEEK_SET);
  return fd;
}

static void data_calls(int tx, int rx) {
  char buf[64];
  long n;
  struct iovec iov[2];
  struct msghdr msg;

  SHOW("send", send(tx, "alpha", 5, 0));
  wait_queued(rx, 5);
  n = SHOW("recv (plain)", plain_recv(rx, buf, sizeof buf, 0));
  show_bytes("  bytes", buf, n);

  SHOW("sendto (connected, no address)", sendto(tx, "bravo", 5, 0, NULL, 0));
  wait_queued(rx, 5);
  n = SHOW("recvfrom (plain)", plain_recvfrom(rx, buf, sizeof buf, 0, NULL, NULL));
  show_bytes("  bytes", buf, n);

  iov[0] = (struct iovec){"char", 4};
  iov[1] = (struct iovec){"lie", 3};
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  SHOW("sendmsg (2 iovecs)", sendmsg(tx, &msg, 0));
  wait_queued(rx, 7);
  iov[0] = (struct iovec){buf, 3};
  iov[1] = (struct iovec){buf + 3, 30};
  n = SHOW("recvmsg (2 iovecs)", recvmsg(rx, &msg, 0));
  show_bytes("  bytes", buf, n);
  printf("%-40s : %d\n", "  msg_flags", msg.msg_flags);

  SHOW("write", write(tx, "delta", 5));
  wait_queued(rx, 5);
  n = SHOW("read (plain)", plain_read(rx, buf, sizeof buf));
  show_bytes("  bytes", buf, n);

  iov[0] = (struct iovec){"ec", 2};
  iov[1] = (struct iovec){"ho", 2};
  SHOW("writev", writev(tx, iov, 2));
  wait_queued(rx, 4);
  iov[0] = (struct iovec){buf, 1};
  iov[1] = (struct iovec){buf + 1, 40};
  n = SHOW("readv", readv(rx, iov, 2));
  show_bytes("  bytes", buf, n);

  int file = text_file("foxtrot-golf");
  off_t off = 0;
  SHOW("sendfile (7 bytes from a file)", sendfile(tx, file, &off, 7));
  printf("%-40s : %ld\n", "  offset after", (long)off);
  wait_queued(rx, 7);
  n = SHOW("read (fortified: __read_chk)", read(rx, buf, g_size16));
  show_bytes("  bytes", buf, n);

  off64_t off64 = 8;
  SHOW("sendfile64 (4 bytes from offset 8)", sendfile64(tx, file, &off64, 4));
  printf("%-40s : %ld\n", "  offset after", (long)off64);
  close(file);
  wait_queued(rx, 4);
  n = SHOW("recv (fortified: __recv_chk)", recv(rx, buf, g_size16, 0));
  show_bytes("  bytes", buf, n);

  SHOW("send", send(tx, "hotel", 5, 0));
  wait_queued(rx, 5);
  n = SHOW("recvfrom (fortified: __recvfrom_chk)", recvfrom(rx, buf, g_size16, 0, NULL, NULL));
  show_bytes("  bytes", buf, n);

  SHOW("send MSG_DONTWAIT", send(tx, "india", 5, MSG_DONTWAIT));
  wait_queued(rx, 5);
  n = SHOW("recv MSG_PEEK", plain_recv(rx, buf, sizeof buf, MSG_PEEK));
  show_bytes("  bytes", buf, n);
  n = SHOW("recv MSG_WAITALL", plain_recv(rx, buf, 5, MSG_WAITALL));
  show_bytes("  bytes", buf, n);
  SHOW("recv MSG_DONTWAIT (empty)", plain_recv(rx, buf, sizeof buf, MSG_DONTWAIT));
}

static void datagram_calls(void) {
  int a = udp_bound(), b = udp_bound();
  struct sockaddr_in to = loopback(port_of(b));
  struct sockaddr_in from;
  socklen_t fromlen = sizeof from;
  char buf[64];
  long n;

  SHOW("sendto (UDP)", sendto(a, "juliet", 6, 0, (struct sockaddr*)&to, sizeof to));
  wait_queued(b, 6);
  n = SHOW("recvfrom (UDP, plain)",
           plain_recvfrom(b, buf, sizeof buf, 0, (struct sockaddr*)&from, &fromlen));
  show_bytes("  bytes", buf, n);
  printf("%-40s : %d\n", "  from the sender's address",
         fromlen == sizeof from && from.sin_port == htons(port_of(a)) &&
             from.sin_addr.s_addr == htonl(INADDR_LOOPBACK));

  SHOW("connect (UDP)", connect(a, (struct sockaddr*)&to, sizeof to));
  char out[3][8] = {"kilo", "lima", "mike"};
  struct iovec oiov[3];
  struct mmsghdr omsg[3];
  memset(omsg, 0, sizeof omsg);
  for (int i = 0; i < 3; ++i) {
    oiov[i] = (struct iovec){out[i], 4};
    omsg[i].msg_hdr.msg_iov = &oiov[i];
    omsg[i].msg_hdr.msg_iovlen = 1;
  }
  SHOW("sendmmsg (3 datagrams)", sendmmsg(a, omsg, 3, 0));
  for (int i = 0; i < 3; ++i) printf("%-40s : %u\n", "  msg_len", omsg[i].msg_len);

  char in[4][16];
  struct iovec iiov[4];
  struct mmsghdr imsg[4];
  memset(imsg, 0, sizeof imsg);
  for (int i = 0; i < 4; ++i) {
    iiov[i] = (struct iovec){in[i], sizeof in[i]};
    imsg[i].msg_hdr.msg_iov = &iiov[i];
    imsg[i].msg_hdr.msg_iovlen = 1;
  }
  wait_queued(b, 4);
  usleep(20000);  // all three datagrams, not just the first
  struct timespec timeout = {0, 200 * 1000 * 1000};
  n = SHOW("recvmmsg (up to 4, MSG_DONTWAIT)", recvmmsg(b, imsg, 4, MSG_DONTWAIT, &timeout));
  for (int i = 0; i < n; ++i) show_bytes("  datagram", in[i], imsg[i].msg_len);
  SHOW("recvmmsg (empty, MSG_DONTWAIT)", recvmmsg(b, imsg, 4, MSG_DONTWAIT, NULL));
  SHOW("close", close(a));
  SHOW("close", close(b));
}

static void nonblocking_calls(int tx, int rx) {
  char buf[16];
  int on = 1, off = 0;
  SHOW("ioctl FIONBIO on", ioctl(rx, FIONBIO, &on));
  SHOW("recv (non-blocking, empty)", plain_recv(rx, buf, sizeof buf, 0));
  SHOW("read (non-blocking, empty)", plain_read(rx, buf, sizeof buf));
  SHOW("ioctl FIONBIO off", ioctl(rx, FIONBIO, &off));
  int fl = SHOW("fcntl F_GETFL", fcntl(rx, F_GETFL));
  SHOW("fcntl F_SETFL O_NONBLOCK", fcntl(rx, F_SETFL, fl | O_NONBLOCK));
  SHOW("fcntl F_GETFL has O_NONBLOCK", (fcntl(rx, F_GETFL) & O_NONBLOCK) != 0);
  SHOW("recv (non-blocking, empty)", plain_recv(rx, buf, sizeof buf, 0));
  SHOW("fcntl64 F_SETFL (blocking)", fcntl64(rx, F_SETFL, fl & ~O_NONBLOCK));
  SHOW("send", send(tx, "nov", 3, 0));
  wait_queued(rx, 3);
  int q = -1;
  SHOW("ioctl FIONREAD", ioctl(rx, FIONREAD, &q));
  printf("%-40s : %d\n", "  queued", q);
  long n = SHOW("recv (blocking)", plain_recv(rx, buf, sizeof buf, 0));
  show_bytes("  bytes", buf, n);
}

static void dup_calls(int tx, int rx) {
  char buf[16];
  long n;
  int d1 = SHOW("dup", dup(tx));
  int d2 = SHOW("dup2 (to 40)", dup2(tx, 40));
  int d3 = SHOW("dup3 (to 41, O_CLOEXEC)", dup3(tx, 41, O_CLOEXEC));
  int d4 = SHOW("fcntl F_DUPFD (>= 50)", fcntl(tx, F_DUPFD, 50));
  int d5 = SHOW("fcntl F_DUPFD_CLOEXEC (>= 50)", fcntl(tx, F_DUPFD_CLOEXEC, 50));
  SHOW("fcntl F_GETFD of the dup3 copy", fcntl(d3, F_GETFD));
  SHOW("fcntl F_GETFD of the F_DUPFD copy", fcntl(d4, F_GETFD));
  SHOW("fcntl F_GETFD of the F_DUPFD_CLOEXEC copy", fcntl(d5, F_GETFD));
  SHOW("dup2 onto itself", dup2(d2, d2));
  SHOW("dup3 onto itself", dup3(d2, d2, 0));
  int copies[] = {d1, d2, d3, d4, d5};
  for (int i = 0; i < 5; ++i) {
    char what[48];
    snprintf(what, sizeof what, "send through copy %d", i + 1);
    SHOW(what, send(copies[i], "o", 1, 0));
  }
  wait_queued(rx, 5);
  n = SHOW("recv", plain_recv(rx, buf, sizeof buf, 0));
  show_bytes("  bytes", buf, n);
  SHOW("close dup", close(d1));
  SHOW("send after closing one dup", send(tx, "p", 1, 0));
  SHOW("close dup2 copy", close(d2));
  SHOW("syscall(SYS_close) of the dup3 copy", syscall(SYS_close, d3));
  SHOW("send via F_DUPFD copy", send(d4, "q", 1, 0));
  wait_queued(rx, 2);
  n = SHOW("recv", plain_recv(rx, buf, sizeof buf, 0));
  show_bytes("  bytes", buf, n);
  int d6 = SHOW("syscall(SYS_dup3) (to 42)", syscall(SYS_dup3, tx, 42, 0));
  SHOW("send via the SYS_dup3 copy", send(d6, "r", 1, 0));
  wait_queued(rx, 1);
  n = SHOW("recv", plain_recv(rx, buf, sizeof buf, 0));
  show_bytes("  bytes", buf, n);
  SHOW("close_range (50, 60, CLOEXEC)", close_range(50, 60, CLOSE_RANGE_CLOEXEC));
  SHOW("fcntl F_GETFD after CLOEXEC range", fcntl(d4, F_GETFD));
  SHOW("send after CLOEXEC range", send(d4, "s", 1, 0));
  SHOW("close_range (42, 60)", close_range(42, 60, 0));
  SHOW("send on fd closed by close_range", send(d4, "t", 1, 0));
  SHOW("send on fd closed by close_range", send(d6, "t", 1, 0));
  SHOW("send on the original", send(tx, "u", 1, 0));
  wait_queued(rx, 2);
  n = SHOW("recv", plain_recv(rx, buf, sizeof buf, 0));
  show_bytes("  bytes", buf, n);
  // dup2 over a socket copy: the socket at the target is implicitly closed.
  int file = text_file("x");
  int d7 = SHOW("dup (to be overwritten)", dup(tx));
  SHOW("dup2 a file over a socket copy", dup2(file, d7));
  SHOW("send on that fd (now a file)", send(d7, "v", 1, 0));
  SHOW("close", close(d7));
  SHOW("close", close(file));
}

static void readiness_calls(int tx, int rx) {
  char buf[16];
  struct pollfd p[1] = {{rx, POLLIN, 0}};
  struct timespec zero = {0, 0}, ms10 = {0, 10 * 1000 * 1000};
  sigset_t mask;
  sigemptyset(&mask);

  SHOW("poll (plain, nothing queued)", plain_poll(p, 1, 10));
  SHOW("send", send(tx, "whiskey", 7, 0));
  wait_queued(rx, 7);
  p[0].revents = 0;
  SHOW("poll (plain)", plain_poll(p, 1, 1000));
  printf("%-40s : %#x\n", "  revents", p[0].revents);
  p[0].revents = 0;
  SHOW("poll (fortified: __poll_chk)", poll(p, g_nfds1, 1000));
  printf("%-40s : %#x\n", "  revents", p[0].revents);
  p[0].revents = 0;
  SHOW("ppoll (plain)", plain_ppoll(p, 1, &zero, &mask));
  printf("%-40s : %#x\n", "  revents", p[0].revents);
  p[0].revents = 0;
  SHOW("ppoll (fortified: __ppoll_chk)", ppoll(p, g_nfds1, &ms10, NULL));
  printf("%-40s : %#x\n", "  revents", p[0].revents);

  fd_set r;
  FD_ZERO(&r);
  FD_SET(rx, &r);
  struct timeval tv = {1, 0};
  SHOW("select", select(rx + 1, &r, NULL, NULL, &tv));
  printf("%-40s : %d\n", "  readable", FD_ISSET(rx, &r) != 0);
  fd_set w;
  FD_ZERO(&r);
  FD_ZERO(&w);
  FD_SET(rx, &r);
  FD_SET(tx, &w);
  SHOW("pselect", pselect((rx > tx ? rx : tx) + 1, &r, &w, NULL, &ms10, &mask));
  printf("%-40s : %d %d\n", "  readable, writable", FD_ISSET(rx, &r) != 0, FD_ISSET(tx, &w) != 0);

  int ep0 = SHOW("epoll_create", epoll_create(8));
  int ep = SHOW("epoll_create1 (EPOLL_CLOEXEC)", epoll_create1(EPOLL_CLOEXEC));
  struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = 7};
  SHOW("epoll_ctl ADD (EPOLLOUT)", epoll_ctl(ep, EPOLL_CTL_ADD, rx, &ev));
  ev.events = EPOLLIN;
  SHOW("epoll_ctl MOD (EPOLLIN)", epoll_ctl(ep, EPOLL_CTL_MOD, rx, &ev));
  SHOW("epoll_ctl ADD again", epoll_ctl(ep, EPOLL_CTL_ADD, rx, &ev));
  struct epoll_event out[4];
  memset(out, 0, sizeof out);
  SHOW("epoll_wait", epoll_wait(ep, out, 4, 1000));
  printf("%-40s : %#x %llu\n", "  events, data", out[0].events,
         (unsigned long long)out[0].data.u64);
  memset(out, 0, sizeof out);
  SHOW("epoll_pwait", epoll_pwait(ep, out, 4, 1000, &mask));
  printf("%-40s : %#x %llu\n", "  events, data", out[0].events,
         (unsigned long long)out[0].data.u64);
  memset(out, 0, sizeof out);
  SHOW("epoll_pwait2", epoll_pwait2(ep, out, 4, &ms10, NULL));
  printf("%-40s : %#x %llu\n", "  events, data", out[0].events,
         (unsigned long long)out[0].data.u64);
  long n = SHOW("recv", plain_recv(rx, buf, sizeof buf, 0));
  show_bytes("  bytes", buf, n);
  SHOW("epoll_wait (drained, 10 ms)", epoll_wait(ep, out, 4, 10));
  SHOW("epoll_ctl DEL", epoll_ctl(ep, EPOLL_CTL_DEL, rx, NULL));
  SHOW("close", close(ep));
  SHOW("close", close(ep0));
}

// SCM_RIGHTS: a socket fd arrives in the middle of the process's life.
static void passing_calls(int tx, int rx) {
  int sv[2];
  SHOW("socketpair (AF_UNIX, SOCK_STREAM)", socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
  printf("%-40s : %d %d\n", "  fds", sv[0], sv[1]);
  union {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(int))];
  } control;
  struct iovec iov = {"F", 1};
  struct msghdr msg;
  memset(&msg, 0, sizeof msg);
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.buf;
  msg.msg_controllen = sizeof control.buf;
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &tx, sizeof tx);
  SHOW("sendmsg (SCM_RIGHTS)", sendmsg(sv[0], &msg, 0));

  char one;
  iov = (struct iovec){&one, 1};
  memset(control.buf, 0, sizeof control.buf);
  msg.msg_controllen = sizeof control.buf;
  SHOW("recvmsg (SCM_RIGHTS)", recvmsg(sv[1], &msg, 0));
  int got = -1;
  c = CMSG_FIRSTHDR(&msg);
  if (c && c->cmsg_type == SCM_RIGHTS) memcpy(&got, CMSG_DATA(c), sizeof got);
  printf("%-40s : %d\n", "  received fd", got);
  SHOW("send through the received fd", send(got, "yankee", 6, 0));
  wait_queued(rx, 6);
  char buf[16];
  long n = SHOW("recv", plain_recv(rx, buf, sizeof buf, 0));
  show_bytes("  bytes", buf, n);
  SHOW("close the received fd", close(got));
  SHOW("close", close(sv[0]));
  SHOW("close", close(sv[1]));
}

static void fork_calls(int tx, int rx) {
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    SHOW("child: send", send(tx, "zulu", 4, 0));
    SHOW("child: close", close(tx));
    int fd = SHOW("child: socket", socket(AF_INET, SOCK_STREAM, 0));
    SHOW("child: close", close(fd));
    fflush(stdout);
    _exit(failures ? 1 : 0);
  }
  CHECK(pid > 0);
  int status = -1;
  SHOW("waitpid returns the child", waitpid(pid, &status, 0) == pid);
  printf("%-40s : %d\n", "  child exit status", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  wait_queued(rx, 4);
  char buf[16];
  long n = SHOW("recv", plain_recv(rx, buf, sizeof buf, 0));
  show_bytes("  bytes", buf, n);
  SHOW("parent: send after the child closed its copy", send(tx, "!", 1, 0));
  wait_queued(rx, 1);
  n = SHOW("recv", plain_recv(rx, buf, sizeof buf, 0));
  show_bytes("  bytes", buf, n);
}

static int probe_all(void) {
  int lfd = tcp_listener();
  struct sockaddr_in to = loopback(port_of(lfd));

  int c1 = SHOW("socket (client)", socket(AF_INET, SOCK_STREAM, 0));
  SHOW("connect (blocking)", connect(c1, (struct sockaddr*)&to, sizeof to));
  struct sockaddr_in peer;
  socklen_t plen = sizeof peer;
  int s1 = SHOW("accept", accept(lfd, (struct sockaddr*)&peer, &plen));
  printf("%-40s : %d\n", "  peer is the client", peer.sin_port == htons(port_of(c1)));

  int c2 = SHOW("socket (SOCK_NONBLOCK)", socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
  SHOW("connect (non-blocking)", connect(c2, (struct sockaddr*)&to, sizeof to));
  struct pollfd p = {c2, POLLOUT, 0};
  SHOW("poll for connect completion", plain_poll(&p, 1, 5000));
  int soerr = -1;
  socklen_t elen = sizeof soerr;
  getsockopt(c2, SOL_SOCKET, SO_ERROR, &soerr, &elen);
  printf("%-40s : %d\n", "  SO_ERROR", soerr);
  SHOW("connect again (connected)", connect(c2, (struct sockaddr*)&to, sizeof to));
  int s2 =
      SHOW("accept4 (NONBLOCK|CLOEXEC)", accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC));
  SHOW("  accepted fd is non-blocking", (fcntl(s2, F_GETFL) & O_NONBLOCK) != 0);
  SHOW("  accepted fd is close-on-exec", fcntl(s2, F_GETFD));

  data_calls(c1, s1);
  data_calls(s1, c1);
  datagram_calls();
  nonblocking_calls(c1, s1);
  dup_calls(c1, s1);
  readiness_calls(c1, s1);
  passing_calls(c1, s1);
  fork_calls(c1, s1);

  char buf[16];
  SHOW("shutdown SHUT_WR", shutdown(c2, SHUT_WR));
  SHOW("recv after the peer's shutdown", plain_recv(s2, buf, sizeof buf, 0));
  SHOW("send after SHUT_WR", send(c2, "x", 1, MSG_NOSIGNAL));
  SHOW("shutdown SHUT_RDWR", shutdown(s2, SHUT_RDWR));

  // Numbers are reused: a socket made after a close gets the lowest free fd.
  SHOW("close", close(c2));
  int c3 = SHOW("socket (takes the freed number)", socket(AF_INET, SOCK_STREAM, 0));
  SHOW("connect", connect(c3, (struct sockaddr*)&to, sizeof to));
  int s3 = SHOW("accept", accept(lfd, NULL, NULL));
  SHOW("send", send(c3, "again", 5, 0));
  wait_queued(s3, 5);
  long n = SHOW("recv", plain_recv(s3, buf, sizeof buf, 0));
  show_bytes("  bytes", buf, n);

  SHOW("syscall(SYS_close_range) (s3..s3)", syscall(SYS_close_range, s3, s3, 0));
  SHOW("send on the closed fd", send(s3, "x", 1, 0));
  closefrom(3);
  printf("closefrom(3)\n");
  int open_fds = 0;
  for (int fd = 3; fd < 64; ++fd) open_fds += fcntl(fd, F_GETFD) >= 0;
  printf("%-40s : %d\n", "  fds >= 3 still open", open_fds);
  SHOW("socket (after closefrom)", socket(AF_INET, SOCK_DGRAM, 0));
  return failures ? 1 : 0;
}

// Failing calls must fail the same way with and without the shim.
static int probe_errors(void) {
  char buf[16];
  int sock = SHOW("socket", socket(AF_INET, SOCK_STREAM, 0));
  SHOW("close", close(sock));
  SHOW("send on a closed fd", send(sock, "x", 1, 0));
  SHOW("recv on a closed fd", plain_recv(sock, buf, sizeof buf, 0));
  SHOW("write on a closed fd", write(sock, "x", 1));
  SHOW("read on a closed fd", plain_read(sock, buf, sizeof buf));
  SHOW("__read_chk on a closed fd", read(sock, buf, g_size16));
  SHOW("close a closed fd", close(sock));
  SHOW("dup a closed fd", dup(sock));
  SHOW("shutdown a closed fd", shutdown(sock, SHUT_RDWR));
  SHOW("fcntl F_DUPFD on a closed fd", fcntl(sock, F_DUPFD, 0));
  SHOW("close(-1)", close(-1));
  SHOW("dup2(-1, 5)", dup2(-1, 5));
  SHOW("dup3 with the same fds", dup3(1, 1, 0));
  SHOW("dup3 with bad flags", dup3(1, 9, 12345));
  SHOW("close_range (lo > hi)", close_range(9, 3, 0));
  SHOW("close_range (bad flags)", close_range(3, 9, 0x1000));
  SHOW("syscall(SYS_close, -1)", syscall(SYS_close, -1));
  SHOW("syscall(SYS_dup3, -1, 5, 0)", syscall(SYS_dup3, -1, 5, 0));
  SHOW("socket (bad family)", socket(12345, SOCK_STREAM, 0));
  SHOW("socket (bad type)", socket(AF_INET, 12345, 0));

  int file = text_file("not a socket");
  SHOW("send on a file", send(file, "x", 1, 0));
  SHOW("recv on a file", plain_recv(file, buf, sizeof buf, 0));
  SHOW("__recv_chk on a file", recv(file, buf, g_size16, 0));
  SHOW("__recvfrom_chk on a file", recvfrom(file, buf, g_size16, 0, NULL, NULL));
  SHOW("sendmsg on a file", sendmsg(file, &(struct msghdr){0}, 0));
  SHOW("connect on a file", connect(file, NULL, 0));
  SHOW("listen on a file", listen(file, 1));
  SHOW("accept on a file", accept(file, NULL, NULL));
  SHOW("shutdown on a file", shutdown(file, SHUT_RD));
  SHOW("read on a file", plain_read(file, buf, 3));
  SHOW("epoll_ctl ADD a regular file",
       epoll_ctl(epoll_create1(0), EPOLL_CTL_ADD, file, &(struct epoll_event){.events = EPOLLIN}));

  // A port with nothing listening: bound, never listened on.
  int holder = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = loopback(0);
  CHECK(bind(holder, (struct sockaddr*)&a, sizeof a) == 0);
  struct sockaddr_in to = loopback(port_of(holder));
  int c = SHOW("socket", socket(AF_INET, SOCK_STREAM, 0));
  SHOW("connect to a port nobody listens on", connect(c, (struct sockaddr*)&to, sizeof to));
  SHOW("send on the refused socket", send(c, "x", 1, MSG_NOSIGNAL));
  SHOW("close", close(c));
  int nb = SHOW("socket (SOCK_NONBLOCK)", socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0));
  SHOW("connect (non-blocking, refused)", connect(nb, (struct sockaddr*)&to, sizeof to));
  struct pollfd p = {nb, POLLOUT, 0};
  SHOW("poll", plain_poll(&p, 1, 5000));
  int soerr = 0;
  socklen_t elen = sizeof soerr;
  getsockopt(nb, SOL_SOCKET, SO_ERROR, &soerr, &elen);
  printf("%-40s : %s\n", "  SO_ERROR", soerr ? strerrorname_np(soerr) : "0");
  SHOW("recv on the refused socket", plain_recv(nb, buf, sizeof buf, 0));

  int u = SHOW("socket (UDP)", socket(AF_INET, SOCK_DGRAM, 0));
  SHOW("listen on UDP", listen(u, 1));
  SHOW("accept on UDP", accept(u, NULL, NULL));
  SHOW("send on unconnected UDP", send(u, "x", 1, 0));
  SHOW("accept4 with bad flags", accept4(holder, NULL, NULL, 12345));
  SHOW("accept on a bound, not listening socket", accept(holder, NULL, NULL));
  SHOW("shutdown (bad how)", shutdown(holder, 77));
  SHOW("shutdown (not connected)", shutdown(holder, SHUT_RDWR));
  SHOW("ioctl FIONREAD on a listening-less socket", ioctl(holder, FIONREAD, &(int){0}));

  // A socket closed behind the shim's back (a raw system call it cannot see),
  // then the number reused for a file: the shim's record is stale.
  int s = SHOW("socket", socket(AF_INET, SOCK_STREAM, 0));
  long raw;
  __asm__ volatile("syscall"
                   : "=a"(raw)
                   : "0"((long)SYS_close), "D"((long)s)
                   : "rcx", "r11", "memory");
  printf("%-40s = %ld\n", "raw close (no libc)", raw);
  SHOW("send on the raw-closed fd", send(s, "x", 1, 0));
  int f2 = SHOW("open a file (takes that number)", open("/dev/null", O_RDONLY));
  SHOW("send on it", send(f2, "x", 1, 0));
  SHOW("recv on it", plain_recv(f2, buf, sizeof buf, 0));
  SHOW("close", close(f2));
  int s4 = SHOW("socket (takes the number again)", socket(AF_INET, SOCK_DGRAM, 0));
  SHOW("sendto (no address)", sendto(s4, "x", 1, 0, NULL, 0));
  SHOW("close", close(s4));

  struct pollfd bad = {1000, POLLIN, 0};
  SHOW("poll on a closed fd", plain_poll(&bad, 1, 0));
  printf("%-40s : %#x\n", "  revents", bad.revents);
  struct epoll_event none[1];
  SHOW("epoll_wait on a non-epoll fd", epoll_wait(file, none, 1, 0));
  fd_set r;
  FD_ZERO(&r);
  FD_SET(20, &r);
  struct timeval tv = {0, 0};
  SHOW("select with a closed fd", select(21, &r, NULL, NULL, &tv));
  return failures ? 1 : 0;
}

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc == 2 && strcmp(argv[1], "all") == 0) return probe_all();
  if (argc == 2 && strcmp(argv[1], "errors") == 0) return probe_errors();
  fprintf(stderr, "usage: %s all|errors\n", argv[0]);
  return 2;
}
