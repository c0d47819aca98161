// The ingress ring: what readers of a socket's shared queue see (stream and
// datagram records, partial reads, peeks, markers, counts), waiting across
// processes, the notify hook, a dead lock owner, and scribbled memory.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/domain/ingress_ring.h"
#include "core/domain/shared_futex.h"
#include "test/support/wait.h"
#include "test/unit/domain/domain_test_util.h"

using namespace sockshim::domain;

namespace {

// A ring of capacity bytes in anonymous shared memory (shared with fork
// children, as the arena is).
struct SharedRing {
  uint64_t len;
  void* mem;
  IngressRing ring;
  explicit SharedRing(uint32_t capacity = 4096)
      : len(IngressRing::bytes_for(capacity)),
        mem(mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0)) {
    REQUIRE(mem != MAP_FAILED);
    REQUIRE(IngressRing::format(mem, len, capacity) == 0);
    REQUIRE(ring.attach(mem, len) == 0);
  }
  ~SharedRing() { munmap(mem, len); }
  IngressRingHeader* header() { return static_cast<IngressRingHeader*>(mem); }
};

std::span<const uint8_t> bytes_of(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

ssize_t append(IngressRing& r, const std::string& s, uint16_t flags = 0,
               const std::string& name = "") {
  return r.append(bytes_of(s), flags, bytes_of(name));
}

// Reads up to n bytes (one iovec); the bytes, with *out and the result.
std::string read(IngressRing& r, size_t n, int flags = 0, RingRead* out = nullptr,
                 int* result = nullptr) {
  std::string buf(n, '\0');
  iovec v{buf.data(), n};
  RingRead rr;
  int res = r.recv(&v, 1, flags, &rr);
  if (out) *out = rr;
  if (result) *result = res;
  buf.resize(res == 0 ? rr.copied : 0);
  return buf;
}

void reap_ok(pid_t pid) {
  int status;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}

}  // namespace

TEST_CASE("ring: stream bytes come out in order, across records, a partial read leaves the rest") {
  SharedRing s;
  IngressRing& r = s.ring;
  REQUIRE_FALSE(r.readable());
  int res = 0;
  read(r, 10, 0, nullptr, &res);
  REQUIRE(res == -EAGAIN);
  REQUIRE(append(r, "hello ") == 6);
  REQUIRE(append(r, "world") == 5);
  REQUIRE(append(r, "") == 0);  // nothing, no record
  REQUIRE(r.readable());
  REQUIRE(r.queued_bytes() == 11);
  REQUIRE(read(r, 3) == "hel");
  REQUIRE(r.queued_bytes() == 8);
  REQUIRE(read(r, 100, MSG_PEEK) == "lo world");
  REQUIRE(r.queued_bytes() == 8);
  // Two iovecs filled across the record boundary.
  char a[4], b[10];
  iovec v[2] = {{a, sizeof a}, {b, sizeof b}};
  RingRead rr;
  REQUIRE(r.recv(v, 2, 0, &rr) == 0);
  REQUIRE(rr.copied == 8);
  REQUIRE(std::string(a, 4) == "lo w");
  REQUIRE(std::string(b, 4) == "orld");
  REQUIRE_FALSE(rr.message);
  REQUIRE_FALSE(r.readable());
  REQUIRE(r.queued_bytes() == 0);
  REQUIRE(r.check() == 0);
}

TEST_CASE("ring: a full ring takes what fits of a stream write, then nothing, until read") {
  SharedRing s(256);
  IngressRing& r = s.ring;
  std::string big(1000, 'x');
  ssize_t n = append(r, big);
  REQUIRE(n == 256 - static_cast<ssize_t>(sizeof(RingRecord)));  // one record fills it
  REQUIRE(r.room() == 0);
  REQUIRE_FALSE(r.writable(1));
  REQUIRE(append(r, "y") == -EAGAIN);
  REQUIRE(read(r, 100).size() == 100);  // a partial read frees nothing yet
  REQUIRE(append(r, "y") == -EAGAIN);
  REQUIRE(read(r, 1000).size() == static_cast<size_t>(n) - 100);
  REQUIRE(r.room() == 256);
  REQUIRE(append(r, "y") == 1);
}

TEST_CASE("ring: random stream traffic wrapping the ring matches a plain queue") {
  SharedRing s(1000);  // not a power of two: records wrap anywhere
  IngressRing& r = s.ring;
  std::mt19937 rng(7);
  std::deque<char> model;
  uint8_t next = 0;
  for (int i = 0; i < 20000; ++i) {
    if (rng() % 2) {
      std::string chunk(rng() % 300 + 1, '\0');
      for (char& c : chunk) c = static_cast<char>(next++);
      ssize_t n = append(r, chunk);
      if (n == -EAGAIN) {
        next = static_cast<uint8_t>(next - chunk.size());
        continue;
      }
      REQUIRE(n > 0);
      next = static_cast<uint8_t>(next - (chunk.size() - n));
      model.insert(model.end(), chunk.begin(), chunk.begin() + n);
    } else {
      bool peek = rng() % 4 == 0;
      std::string got = read(r, rng() % 400 + 1, peek ? MSG_PEEK : 0);
      REQUIRE(got.size() <= model.size());
      REQUIRE(std::equal(got.begin(), got.end(), model.begin()));
      if (!peek) model.erase(model.begin(), model.begin() + static_cast<ptrdiff_t>(got.size()));
    }
    REQUIRE(r.queued_bytes() == model.size());
  }
  REQUIRE(r.check() == 0);
}

TEST_CASE("ring: datagrams are read one at a time, whole, with their source, cut when too big") {
  SharedRing s;
  IngressRing& r = s.ring;
  sockaddr_in6 src{};
  src.sin6_family = AF_INET6;
  src.sin6_port = htons(4242);
  std::string name(reinterpret_cast<const char*>(&src), sizeof src);
  REQUIRE(append(r, "first", kRecMessage, name) == 5);
  REQUIRE(append(r, "", kRecMessage) == 0);  // an empty datagram is one
  REQUIRE(append(r, "third one", kRecMessage) == 9);
  RingRead rr;
  REQUIRE(read(r, 0, MSG_PEEK, &rr) == "");  // FIONREAD of a datagram socket
  REQUIRE(rr.len == 5);
  REQUIRE(read(r, 100, MSG_PEEK, &rr) == "first");
  REQUIRE(rr.message);
  REQUIRE(read(r, 100, 0, &rr) == "first");
  REQUIRE(rr.len == 5);
  REQUIRE(rr.name_len == sizeof src);
  REQUIRE(memcmp(rr.name, &src, sizeof src) == 0);
  REQUIRE(read(r, 100, 0, &rr) == "");
  REQUIRE(rr.message);
  REQUIRE(rr.name_len == 0);
  REQUIRE(read(r, 5, 0, &rr) == "third");  // cut: the rest is gone
  REQUIRE(rr.len == 9);
  REQUIRE_FALSE(r.readable());
  REQUIRE(r.queued_bytes() == 0);
  // A datagram is never split: one that can never fit is refused as such.
  REQUIRE(append(r, std::string(5000, 'd'), kRecMessage) == -EMSGSIZE);
  REQUIRE(append(r, "x", kRecMessage, std::string(kRingMaxName + 1, 'n')) == -EINVAL);
  REQUIRE(append(r, "x", 0, "name") == -EINVAL);
}

TEST_CASE("ring: EOF stays at the head after the bytes; an error is taken by one read") {
  SharedRing s;
  IngressRing& r = s.ring;
  REQUIRE(append(r, "abc") == 3);
  REQUIRE(r.append_marker(kRecError, ECONNRESET) == 0);
  REQUIRE(append(r, "de") == 2);
  REQUIRE(r.append_marker(kRecEof) == 0);
  REQUIRE(r.append_marker(kRecError, 0) == -EINVAL);
  RingRead rr;
  REQUIRE(read(r, 100, 0, &rr) == "abc");  // the bytes before it first, alone
  REQUIRE(rr.err == 0);
  read(r, 100, MSG_PEEK, &rr);
  REQUIRE(rr.err == ECONNRESET);  // a peek leaves it
  read(r, 100, 0, &rr);
  REQUIRE(rr.err == ECONNRESET);
  REQUIRE(read(r, 100, 0, &rr) == "de");
  REQUIRE_FALSE(rr.eof);
  for (int i = 0; i < 3; ++i) {
    REQUIRE(read(r, 100, 0, &rr) == "");
    REQUIRE(rr.eof);
  }
  REQUIRE(r.readable());  // a reader never waits at EOF
  REQUIRE(r.check() == 0);
}

TEST_CASE("ring: threads appending and reading at once: each datagram read once, in order") {
  SharedRing s(2048);
  constexpr int kWriters = 2, kReaders = 2, kEach = 20000;
  std::vector<std::vector<uint32_t>> got(kReaders);  // (writer << 24 | seq) as read
  std::atomic<int> read_total{0}, errors{0};
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w)
    threads.emplace_back([&, w] {
      IngressRing view;  // a view per thread, as per process; the same memory
      if (view.attach(s.mem, s.len) != 0) return errors.fetch_add(1), void();
      for (uint32_t seq = 0; seq < kEach; ++seq) {
        uint32_t v = uint32_t(w) << 24 | seq;
        for (;;) {
          ssize_t r = view.append({reinterpret_cast<uint8_t*>(&v), sizeof v}, kRecMessage);
          if (r == sizeof v) break;
          timespec deadline = monotonic_deadline(5000);
          if (r != -EAGAIN || view.wait_writable(sizeof v, 0, &deadline) != 0)
            return errors.fetch_add(1), void();
        }
      }
    });
  for (int rd = 0; rd < kReaders; ++rd)
    threads.emplace_back([&, rd] {
      while (read_total.load() < kWriters * kEach) {
        uint32_t v;
        iovec io{&v, sizeof v};
        RingRead rr;
        int r = s.ring.recv(&io, 1, 0, &rr);  // one view shared by the readers
        if (r == -EAGAIN) {
          timespec deadline = monotonic_deadline(20);
          s.ring.wait_readable(&deadline);  // the other reader may take it first
          continue;
        }
        if (r != 0 || rr.copied != sizeof v) return errors.fetch_add(1), void();
        got[rd].push_back(v);
        read_total.fetch_add(1);
      }
    });
  for (auto& t : threads) t.join();
  REQUIRE(errors.load() == 0);
  std::vector<uint32_t> all;
  for (const auto& g : got) {
    std::vector<int64_t> last(kWriters, -1);
    for (uint32_t v : g) {
      REQUIRE(static_cast<int64_t>(v & 0xffffff) > last[v >> 24]);  // in order per writer
      last[v >> 24] = v & 0xffffff;
    }
    all.insert(all.end(), g.begin(), g.end());
  }
  std::sort(all.begin(), all.end());
  REQUIRE(all.size() == size_t{kWriters} * kEach);
  REQUIRE(std::adjacent_find(all.begin(), all.end()) == all.end());  // none twice
  REQUIRE(s.ring.check() == 0);
}

TEST_CASE("ring: lives in an arena block, found again by its offset") {
  domain_test::SharedArena a;
  int err = 0;
  uint64_t off = IngressRing::create(a.arena, 4096, &err);
  REQUIRE(off != 0);
  REQUIRE(a.arena.check("name:test") == 0);
  IngressRing w, rd;
  REQUIRE(w.attach(a.arena, off) == 0);
  REQUIRE(rd.attach(a.arena, off) == 0);
  REQUIRE(append(w, "via the arena") == 13);
  REQUIRE(read(rd, 100) == "via the arena");
  REQUIRE(IngressRing::create(a.arena, 10, &err) == 0);
  REQUIRE(err == -EINVAL);
  IngressRing bad;
  REQUIRE(bad.attach(a.arena, a.size - 8) == -EUCLEAN);
  REQUIRE(std::string(bad.why()).find("outside the arena") != std::string::npos);
  REQUIRE(append(bad, "x") == -EUCLEAN);
}

TEST_CASE("ring: a reader in another process sleeps on the futex and wakes on an append") {
  SharedRing s;
  auto* result = static_cast<std::atomic<int>*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  result->store(-1);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    timespec deadline = monotonic_deadline(10000);
    int w = s.ring.wait_readable(&deadline);
    std::string got = read(s.ring, 100);
    result->store(w == 0 && got == "wake up" ? 1 : 0);
    _exit(0);
  }
  REQUIRE(test_support::eventually([&] { return s.header()->readers_waiting.load() == 1; }));
  REQUIRE(result->load() == -1);
  REQUIRE(append(s.ring, "wake up") == 7);
  reap_ok(pid);
  REQUIRE(result->load() == 1);
  REQUIRE(s.header()->readers_waiting.load() == 0);
  munmap(result, 4096);
}

TEST_CASE("ring: a writer waits for room (backpressure) and wakes when a reader takes") {
  SharedRing s(256);
  REQUIRE(append(s.ring, std::string(240, 'a')) == 240);
  auto* result = static_cast<std::atomic<int>*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  result->store(-1);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    timespec deadline = monotonic_deadline(10000);
    int w = s.ring.wait_writable(100, 0, &deadline);
    result->store(w == 0 && append(s.ring, std::string(100, 'b')) == 100 ? 1 : 0);
    _exit(0);
  }
  REQUIRE(test_support::eventually([&] { return s.header()->writers_waiting.load() == 1; }));
  REQUIRE(read(s.ring, 240) == std::string(240, 'a'));
  reap_ok(pid);
  REQUIRE(result->load() == 1);
  REQUIRE(read(s.ring, 240) == std::string(100, 'b'));
  REQUIRE(s.ring.wait_writable(300, 0, nullptr) == -EMSGSIZE);
  munmap(result, 4096);
}

TEST_CASE("ring: waits end at their deadline") {
  SharedRing s(256);
  timespec deadline = monotonic_deadline(50);
  REQUIRE(s.ring.wait_readable(&deadline) == -ETIMEDOUT);
  REQUIRE(append(s.ring, std::string(300, 'a')) == 240);
  deadline = monotonic_deadline(50);
  REQUIRE(s.ring.wait_writable(1, 0, &deadline) == -ETIMEDOUT);
  REQUIRE(s.header()->readers_waiting.load() == 0);
  REQUIRE(s.header()->writers_waiting.load() == 0);
}

namespace {
struct Notified {
  int calls = 0;
  uint32_t events = 0;
};
void on_notify(void* ctx, uint32_t events) noexcept {
  auto* n = static_cast<Notified*>(ctx);
  ++n->calls;
  n->events |= events;
}
}  // namespace

TEST_CASE("ring: the notify hook runs once per armed event, in the process making the change") {
  SharedRing s;
  IngressRing watcher;  // another holder's view of the same ring
  REQUIRE(watcher.attach(s.mem, s.len) == 0);
  Notified n;
  s.ring.set_notify(on_notify, &n);
  REQUIRE(append(s.ring, "unwatched") == 9);
  REQUIRE(n.calls == 0);
  REQUIRE(read(s.ring, 100) == "unwatched");
  REQUIRE(n.calls == 0);

  REQUIRE(watcher.arm_notify(kNotifyData) == 0);  // not readable now: wait for the hook
  REQUIRE(append(s.ring, "one") == 3);
  REQUIRE(n.calls == 1);
  REQUIRE(n.events == kNotifyData);
  REQUIRE(append(s.ring, "two") == 3);  // disarmed by the first
  REQUIRE(n.calls == 1);
  REQUIRE(watcher.arm_notify(kNotifyData) == kNotifyData);  // already readable

  n = {};
  REQUIRE(watcher.arm_notify(kNotifySpace | kNotifyEmpty) == kNotifySpace);
  REQUIRE(read(s.ring, 1) == "o");  // room, not yet empty
  REQUIRE(n.events == kNotifySpace);
  REQUIRE(read(s.ring, 100) == "netwo");
  REQUIRE(n.events == (kNotifySpace | kNotifyEmpty));
  REQUIRE(n.calls == 2);
}

TEST_CASE("ring: a process killed holding a lock leaves the ring whole and usable") {
  SharedRing s(1024);
  REQUIRE(append(s.ring, "kept") == 4);
  for (RobustMutex* m : {&s.header()->write_lock, &s.header()->read_lock}) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      m->lock(1000);
      // Half an append: bytes past the tail, never committed.
      memset(static_cast<uint8_t*>(s.mem) + IngressRing::bytes_for(0) + 4 + sizeof(RingRecord),
             0xee, 200);
      kill(getpid(), SIGKILL);
    }
    int status;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFSIGNALED(status));
  }
  REQUIRE(append(s.ring, " and more") == 9);
  REQUIRE(read(s.ring, 100) == "kept and more");
  REQUIRE(s.ring.counters().recoveries == 2);
  REQUIRE(s.ring.check() == 0);
}

TEST_CASE("ring: a sleeper whose waker died between commit and wake-up is woken by wake_all") {
  SharedRing s;
  auto* result = static_cast<std::atomic<int>*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  result->store(-1);
  pid_t reader = fork();
  REQUIRE(reader >= 0);
  if (reader == 0) {
    timespec deadline = monotonic_deadline(10000);
    int w = s.ring.wait_readable(&deadline);
    result->store(w == 0 && read(s.ring, 100) == "late" ? 1 : 0);
    _exit(0);
  }
  REQUIRE(test_support::eventually([&] { return s.header()->readers_waiting.load() == 1; }));
  pid_t writer = fork();
  REQUIRE(writer >= 0);
  if (writer == 0) {
    // An append's commit by hand, then death before its wake-up.
    s.header()->write_lock.lock(1000);
    RingRecord r{4, 0, 0, kRecordTag, 0, 0};
    uint8_t* data = static_cast<uint8_t*>(s.mem) + IngressRing::bytes_for(0);
    memcpy(data, &r, sizeof r);
    memcpy(data + sizeof r, "late", 4);
    s.header()->prod.store(sizeof r + 4 | uint64_t{4} << 32);
    kill(getpid(), SIGKILL);
  }
  int status;
  REQUIRE(waitpid(writer, &status, 0) == writer);
  REQUIRE(s.ring.readable());
  REQUIRE(result->load() == -1);  // still asleep: nobody woke it
  s.ring.wake_all();              // as the domain does on finding the writer dead
  reap_ok(reader);
  REQUIRE(result->load() == 1);
  // The next producer takes the dead writer's lock over and wakes everyone too.
  REQUIRE(append(s.ring, "on") == 2);
  REQUIRE(s.ring.counters().recoveries == 1);
  munmap(result, 4096);
}

TEST_CASE("ring: scribbled memory fails closed with a reason, never a wild access") {
  SharedRing s(1024);
  REQUIRE(append(s.ring, "abcdef") == 6);

  SECTION("positions out of range") {
    s.header()->prod.store(0xffffff00ull);
    int res;
    read(s.ring, 10, 0, nullptr, &res);
    REQUIRE(res == -EUCLEAN);
    REQUIRE(std::string(s.ring.why()).find("do not fit its capacity") != std::string::npos);
    REQUIRE(append(s.ring, "x") == -EUCLEAN);  // failed closed from then on
    REQUIRE_FALSE(s.ring.writable(1));
  }
  SECTION("a record header") {
    auto* rec =
        reinterpret_cast<RingRecord*>(static_cast<uint8_t*>(s.mem) + IngressRing::bytes_for(0));
    rec->len = 100000;
    int res;
    read(s.ring, 10, 0, nullptr, &res);
    REQUIRE(res == -EUCLEAN);
    REQUIRE(std::string(s.ring.why()).find("more than the") != std::string::npos);
  }
  SECTION("the reader's count") {
    s.header()->cons.store(uint64_t{3} << 32);  // 3 bytes taken of the head record
    REQUIRE(read(s.ring, 10) == "def");         // still consistent: a partial read
    s.header()->cons.store(uint64_t{50} << 32);
    int res;
    read(s.ring, 10, 0, nullptr, &res);
    REQUIRE(res == -EUCLEAN);
    REQUIRE(std::string(s.ring.why()).find("bytes taken") != std::string::npos);
  }
  SECTION("the capacity, after attaching: the view keeps its own") {
    s.header()->capacity = 0x7fffffff;
    REQUIRE(read(s.ring, 10) == "abcdef");
    REQUIRE(s.ring.check() == -EUCLEAN);
    IngressRing late;
    REQUIRE(late.attach(s.mem, s.len) == -EUCLEAN);
  }
  SECTION("a lock") {
    memset(static_cast<void*>(&s.header()->read_lock), 0x5a, sizeof(RobustMutex));
    int res;
    read(s.ring, 10, 0, nullptr, &res);
    REQUIRE(res == -EUCLEAN);
    REQUIRE(std::string(s.ring.why()).find("lock") != std::string::npos);
  }
  SECTION("the magic") {
    s.header()->magic = 0;
    IngressRing late;
    REQUIRE(late.attach(s.mem, s.len) == -EUCLEAN);
    REQUIRE(std::string(late.why()).find("magic") != std::string::npos);
  }
}
