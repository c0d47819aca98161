// The traffic of one row, the same under either backend. Readers do not use
// poll: they retry recv(MSG_DONTWAIT) every millisecond, so a row measures
// what the receive path delivers, not readiness. Every wait is bounded.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "recv_rows.h"
#include "test/support/redirect.h"

namespace recv_conf {
namespace {

using Clock = std::chrono::steady_clock;

// A reader has its expected bytes (or kExpectLimit passed) and then nothing
// moved for kQuiet: whatever else was coming has come. The kernel's redirect
// work, like the shim's engine, may lag by far more than kQuiet on a loaded
// machine, hence the wait for the expected count first.
constexpr auto kExpectLimit = std::chrono::seconds(5);
constexpr auto kQuiet = std::chrono::milliseconds(200);
constexpr auto kQuietLimit = std::chrono::seconds(10);  // traffic that never settles
constexpr auto kEndLimit = std::chrono::seconds(2);     // EOF after shutdown
constexpr auto kProbeLimit = std::chrono::seconds(2);   // a waiting probe

// Blocked writes on the pair's ends fail instead of hanging the suite.
void send_timeout(const test_support::LoopbackPair& pair) {
  timeval t{3, 0};
  setsockopt(pair.c, SOL_SOCKET, SO_SNDTIMEO, &t, sizeof t);
  setsockopt(pair.p, SOL_SOCKET, SO_SNDTIMEO, &t, sizeof t);
}

std::string errno_name(int e) {
  const char* n = strerrorname_np(e);
  return n ? n : std::to_string(e);
}

struct Drain {
  Reader* out;
  std::atomic<size_t> got{0};
  std::atomic<bool> done{false};
};

// Last time a byte moved (written or read), for the quiet wait.
std::atomic<Clock::rep> g_last_move{0};
void moved() {
  g_last_move = Clock::now().time_since_epoch().count();
}

void read_loop(int fd, Drain* d, const std::atomic<bool>* stop) {
  char buf[65536];
  while (!stop->load()) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) {
      d->out->bytes.append(buf, static_cast<size_t>(n));
      d->got += static_cast<size_t>(n);
      moved();
    } else if (n == 0) {
      d->out->end = "EOF";
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } else {
      d->out->end = "error " + errno_name(errno);
      break;
    }
  }
  if (d->out->end.empty()) d->out->end = "open";
  d->done = true;
}

std::string probe_recv(int fd, bool wait) {
  char buf[65536];
  ssize_t n;
  const auto start = Clock::now();
  while ((n = recv(fd, buf, sizeof buf, MSG_DONTWAIT)) < 0 && errno == EAGAIN && wait &&
         Clock::now() - start < kProbeLimit)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (n < 0) return "recv p1: " + errno_name(errno);
  if (n == 0) return "recv p1: EOF";
  return "recv p1: " + show(std::string(buf, static_cast<size_t>(n)));
}

std::string probe_so_error(int fd, bool wait) {
  int err = 0;
  socklen_t len = sizeof err;
  int r;
  const auto start = Clock::now();
  while ((r = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)) == 0 && err == 0 && wait &&
         Clock::now() - start < kProbeLimit)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (r) return "SO_ERROR p1: " + errno_name(errno);
  return "SO_ERROR p1: " + (err ? errno_name(err) : std::string("0"));
}

void settle(const Drain& d, size_t want) {
  auto since = [](Clock::time_point t) { return Clock::now() - t; };
  const auto start = Clock::now();
  while (d.got < want && since(start) < kExpectLimit)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto quiet_start = Clock::now();
  while (since(Clock::time_point(Clock::duration(g_last_move.load()))) < kQuiet &&
         since(quiet_start) < kQuietLimit)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

// One write, its result as -errno on failure.
ssize_t write_one(int fd, const std::string& b) {
  ssize_t r = write(fd, b.data(), b.size());
  moved();
  return r < 0 ? -errno : r;
}

// The row's redirect target: c2 for egress, p2 for ingress, -1 for none.
int redirect_target(const Row& row, int c2, int p2) {
  switch (row.progs.action) {
    case Action::redirect_egress:
      return c2;
    case Action::redirect_ingress:
      return p2;
    default:
      return -1;
  }
}

}  // namespace

Outcome run_traffic(const Row& row, const Insert& insert) {
  Outcome o;
  test_support::RedirectPairs pairs;
  pairs.connect();  // a failed step leaves -1: the row's traffic fails with it
  send_timeout(pairs.a);
  send_timeout(pairs.b);
  const int c1 = pairs.a.c, p1 = pairs.a.p, c2 = pairs.b.c, p2 = pairs.b.p;
  int one = 1;
  setsockopt(c1, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);  // one segment per write
  const int target = redirect_target(row, c2, p2);
  auto do_insert = [&] {
    if (int r = insert(p1, target)) o.probes.push_back("insert: " + errno_name(-r));
  };

  bool scripted_insert = false;
  for (const Step& s : row.script) scripted_insert |= s.kind == Step::insert;
  if (!scripted_insert) do_insert();
  for (const Step& s : row.script) {
    switch (s.kind) {
      case Step::write:
        o.writes.push_back(write_one(c1, s.bytes));
        break;
      case Step::insert:
        do_insert();
        break;
      case Step::sleep:
        std::this_thread::sleep_for(std::chrono::milliseconds(s.ms));
        break;
      case Step::recv:
        o.probes.push_back(probe_recv(p1, s.wait));
        break;
      case Step::so_error:
        o.probes.push_back(probe_so_error(p1, s.wait));
        break;
    }
  }

  std::atomic<bool> stop{false};
  Drain d1{&o.p1}, d2{&o.p2}, d3{&o.c1}, d4{&o.c2};
  moved();
  std::thread t2(read_loop, p2, &d2, &stop), t3(read_loop, c1, &d3, &stop),
      t4(read_loop, c2, &d4, &stop);
  for (const std::string& w : row.writes) {
    o.writes.push_back(write_one(c1, w));
    if (row.pace_ms) std::this_thread::sleep_for(std::chrono::milliseconds(row.pace_ms));
  }
  if (row.eof_early) shutdown(c1, SHUT_WR);

  settle(d2, row.expect_p2.size());
  // p1 is read only now: on 6.18 a recv on a verdict-mode redirect source,
  // racing with its verdict, loses bytes under CPU load (a kernel race no row
  // should depend on). Its bytes wait in its queue meanwhile.
  std::thread t1(read_loop, p1, &d1, &stop);
  settle(d1, row.expect_p1.size());
  // The target's pair ends first: in verdict mode c1's FIN is redirected
  // too, and what that does to p2 is row 5e's business, not every row's.
  auto end = [](std::initializer_list<int> fds, std::initializer_list<const Drain*> readers) {
    for (int fd : fds) shutdown(fd, SHUT_WR);
    const auto shut = Clock::now();
    auto done = [&] {
      for (const Drain* d : readers)
        if (!d->done) return false;
      return true;
    };
    while (!done() && Clock::now() - shut < kEndLimit)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
  };
  end({c2, p2}, {&d2, &d4});
  end({c1, p1}, {&d1, &d3});
  stop = true;
  for (std::thread* t : {&t1, &t2, &t3, &t4}) t->join();
  return o;
}

std::string show(const std::string& bytes) {
  std::string s = std::to_string(bytes.size()) + " \"";
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (i == 48 && bytes.size() > 64) {
      s += "...";
      i = bytes.size() - 8;
    }
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      s += static_cast<char>(c);
    } else {
      char hex[5];
      snprintf(hex, sizeof hex, "\\x%02x", c);
      s += hex;
    }
  }
  return s + "\"";
}

std::string describe(const Outcome& o) {
  std::string s;
  for (const std::string& p : o.probes) s += "    " + p + "\n";
  for (size_t i = 0; i < o.writes.size(); ++i)
    s += "    write " + std::to_string(i) + ": " + std::to_string(o.writes[i]) + "\n";
  auto reader = [&](const char* name, const Reader& r) {
    s += std::string("    ") + name + ": " + show(r.bytes) + ", " + r.end + "\n";
  };
  reader("p1", o.p1);
  reader("p2", o.p2);
  reader("c1", o.c1);
  reader("c2", o.c2);
  return s;
}

std::string frame(const std::string& payload) {
  uint32_t be = htonl(static_cast<uint32_t>(payload.size()));
  return std::string(reinterpret_cast<const char*>(&be), 4) + payload;
}

std::string pattern(size_t n, unsigned seed) {
  std::string s(n, 0);
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + seed) % 26);
  return s;
}

}  // namespace recv_conf
