// kill -9 of the ring's producers and reader, at whatever instruction they
// are, in a loop under traffic: every byte committed reaches the reader once,
// in order, and no record is ever seen torn.
//
// Stream: one producer and one reader at a time, each replaced when killed;
// byte i of the stream is pattern(i), so the reader's log must be exactly
// the pattern, and as long as what the producers committed. Datagrams: three
// producers and one reader; each datagram carries its producer's id, a
// sequence number and where in the pattern its bytes come from, so the log must hold every
// producer's datagrams whole, in order, without a gap (apart from the one a producer was killed
// appending, which may or may not have committed).
//
// The reader copies straight into a shared circular log at the ring's
// bytes_out, and the ring's commit follows the copy: a killed reader's
// committed bytes are in the log (a real reader's would be gone with it, as in
// the kernel). The parent checks the log as it fills and lets the producers
// run only as far as the log has room for; every other kill waits until its
// victim holds its side's lock, so that kills land inside the locks too.
#include <catch2/catch.hpp>

#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <random>
#include <vector>

#include "core/domain/ingress_ring.h"
#include "core/domain/shared_futex.h"
#include "test/support/wait.h"

using namespace sockshim::domain;

namespace {

constexpr uint32_t kCapacity = 64 * 1024;
constexpr uint64_t kLogBytes = 16 << 20;      // circular
constexpr uint64_t kBudget = 8 << 20;         // traffic per kill, at most
constexpr uint64_t kSlack = 200000;           // producers' overshoot of allow, at most
constexpr uint64_t kMaxTraffic = 3ull << 30;  // the ring's counts are mod 2^32
constexpr int kProducers = 3;                 // datagram mode
constexpr int kMaxIds = 4096;                 // producer incarnations

// Byte i of the stream: a random table repeated with a prime period, so
// that no ring or log size lines up with it, and checks are memcmp fast.
constexpr size_t kPeriod = 65521;
const std::vector<uint8_t>& pattern_table() {
  static const std::vector<uint8_t> t = [] {
    std::vector<uint8_t> v(2 * kPeriod);
    std::mt19937 rng(1);
    for (size_t i = 0; i < kPeriod; ++i) v[i] = v[i + kPeriod] = static_cast<uint8_t>(rng());
    return v;
  }();
  return t;
}
// n <= kPeriod pattern bytes from stream position i.
const uint8_t* pattern(uint64_t i) {
  return pattern_table().data() + i % kPeriod;
}

struct Datagram {
  uint32_t id, seq, len;  // len: payload bytes after this header
  uint32_t from;          // the payload is pattern(from)
};

// What the processes share besides the ring.
struct Shared {
  std::atomic<uint64_t> appended[kMaxIds];  // each producer's appends that returned
  std::atomic<uint64_t> read_bytes;         // the reader's progress
  // Producers stop at allow bytes appended (the log's room) and sleep on
  // allow_seq, which the parent bumps when it raises allow.
  std::atomic<uint64_t> allow;
  std::atomic<uint32_t> allow_seq;
  uint8_t* log;  // kLogBytes after this, at the same address in every process
};

struct Setup {
  uint64_t ring_len = IngressRing::bytes_for(kCapacity);
  void* ring_mem;
  Shared* sh;
  IngressRing ring;
  Setup() {
    ring_mem = mmap(nullptr, ring_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    sh = static_cast<Shared*>(mmap(nullptr, sizeof(Shared) + kLogBytes, PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0));
    REQUIRE(ring_mem != MAP_FAILED);
    REQUIRE(sh != MAP_FAILED);
    sh->log = reinterpret_cast<uint8_t*>(sh + 1);
    REQUIRE(IngressRing::format(ring_mem, ring_len, kCapacity) == 0);
    REQUIRE(ring.attach(ring_mem, ring_len) == 0);
  }
  ~Setup() {
    munmap(ring_mem, ring_len);
    munmap(sh, sizeof(Shared) + kLogBytes);
  }
  // The owner of a ring lock, by glibc's lock word (its first int: the
  // owner's thread id); 0 when free.
  pid_t owner(bool read_side) const {
    auto* h = static_cast<IngressRingHeader*>(ring_mem);
    auto* w = reinterpret_cast<std::atomic<int>*>(read_side ? &h->read_lock : &h->write_lock);
    return w->load() & FUTEX_TID_MASK;
  }
};

// A child dies with its parent (a failed test must not leave them running).
pid_t spawn(void (*body)(Setup&, int), Setup& s, int arg) {
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    body(s, arg);
    _exit(0);
  }
  return pid;
}

// Iovecs over n log bytes from stream position pos, split at the log's end.
void log_iov(Setup& s, uint64_t pos, size_t n, std::vector<iovec>* v) {
  const uint64_t at = pos % kLogBytes;
  const size_t first = std::min<uint64_t>(n, kLogBytes - at);
  if (first) v->push_back({s.sh->log + at, first});
  if (n > first) v->push_back({s.sh->log, n - first});
}

// Reads into the log at pos (the ring's bytes_out); the bytes, or -errno.
int64_t read_into_log(Setup& s, uint64_t pos, size_t n, size_t split, RingRead* rr) {
  std::vector<iovec> v;
  log_iov(s, pos, split, &v);
  log_iov(s, pos + split, n - split, &v);
  int r = s.ring.recv(v.data(), v.size(), 0, rr);
  return r < 0 ? r : static_cast<int64_t>(rr->copied);
}

// The one reader: takes in random sizes (a stream) or whole datagrams,
// sleeping on the futex when the ring is empty.
void reader(Setup& s, int dgram) {
  std::mt19937 rng(getpid());
  uint64_t pos = s.ring.counters().bytes_out;
  for (;;) {
    size_t n = dgram ? 65536 : rng() % 20000 + 1;
    RingRead rr;
    int64_t r = read_into_log(s, pos, n, rng() % (n + 1), &rr);
    if (r == -EAGAIN) {
      timespec deadline = monotonic_deadline(1000);
      if (int w = s.ring.wait_readable(&deadline); w < 0 && w != -ETIMEDOUT) _exit(2);
      continue;
    }
    if (r < 0 || (dgram && rr.copied != rr.len)) _exit(3);
    pos += static_cast<uint64_t>(r);
    s.sh->read_bytes.store(pos);
  }
}

// Sleeps while the producers have appended what the parent allows.
void paced(Setup& s) {
  for (;;) {
    const uint32_t seq = s.sh->allow_seq.load();
    if (s.ring.counters().bytes_in < s.sh->allow.load()) return;
    timespec deadline = monotonic_deadline(1000);
    shared_futex_wait(&s.sh->allow_seq, seq, &deadline);
  }
}

// A stream producer: pattern bytes from the ring's bytes_in on.
void stream_producer(Setup& s, int id) {
  std::mt19937 rng(getpid());
  uint64_t pos = s.ring.counters().bytes_in;
  for (;;) {
    paced(s);
    size_t n = rng() % 30000 + 1;
    ssize_t r = s.ring.append({pattern(pos), n});
    if (r == -EAGAIN) {
      timespec deadline = monotonic_deadline(1000);
      if (int w = s.ring.wait_writable(1, 0, &deadline); w < 0 && w != -ETIMEDOUT) _exit(2);
      continue;
    }
    if (r <= 0) _exit(3);
    pos += static_cast<uint64_t>(r);
    s.sh->appended[id].store(pos);
  }
}

// A datagram producer: numbered datagrams of random sizes and contents.
void dgram_producer(Setup& s, int id) {
  std::mt19937 rng(getpid());
  std::vector<uint8_t> buf(sizeof(Datagram) + 8000);
  for (uint32_t seq = 0;; ++seq) {
    paced(s);
    auto* d = reinterpret_cast<Datagram*>(buf.data());
    d->id = static_cast<uint32_t>(id);
    d->seq = seq;
    d->len = rng() % 8000;
    d->from = rng() % kPeriod;
    memcpy(buf.data() + sizeof(Datagram), pattern(d->from), d->len);
    const size_t n = sizeof(Datagram) + d->len;
    for (;;) {
      ssize_t r = s.ring.append({buf.data(), n}, kRecMessage);
      if (r == static_cast<ssize_t>(n)) break;
      if (r != -EAGAIN) _exit(3);
      timespec deadline = monotonic_deadline(1000);
      if (int w = s.ring.wait_writable(n, 0, &deadline); w < 0 && w != -ETIMEDOUT) _exit(2);
    }
    s.sh->appended[id].store(seq + 1);
  }
}

// Checks the log as the reader fills it: the stream's pattern, or whole
// datagrams in each producer's order. The first error is kept.
struct Verifier {
  Setup& s;
  bool dgram;
  uint64_t checked = 0;
  std::vector<int64_t> last = std::vector<int64_t>(kMaxIds, -1);  // datagrams: the last seq
  uint64_t datagrams = 0;
  std::string error;

  void copy(uint64_t pos, void* dst, size_t n) {
    const uint64_t at = pos % kLogBytes;
    const size_t first = std::min<uint64_t>(n, kLogBytes - at);
    memcpy(dst, s.sh->log + at, first);
    memcpy(static_cast<uint8_t*>(dst) + first, s.sh->log, n - first);
  }
  // Checks up to upto (bytes the ring's reader has committed).
  void advance(uint64_t upto) {
    while (error.empty() && checked < upto) {
      if (!dgram) {
        const uint64_t at = checked % kLogBytes;
        const size_t n = std::min({upto - checked, kLogBytes - at, uint64_t{kPeriod}});
        if (memcmp(s.sh->log + at, pattern(checked), n) != 0)
          error = "stream bytes " + std::to_string(checked) + " to " + std::to_string(checked + n) +
                  " are wrong";
        checked += n;
        continue;
      }
      Datagram d;
      if (upto - checked < sizeof d) return;
      copy(checked, &d, sizeof d);
      if (d.id >= kMaxIds || d.len > 8000 || d.from >= kPeriod) {
        error = "a torn datagram header at " + std::to_string(checked);
        return;
      }
      if (upto - checked < sizeof d + d.len) return;
      std::vector<uint8_t> payload(d.len);
      copy(checked + sizeof d, payload.data(), d.len);
      if (memcmp(payload.data(), pattern(d.from), d.len) != 0)
        error = "datagram " + std::to_string(d.seq) + " of producer " + std::to_string(d.id) +
                " is torn";
      else if (static_cast<int64_t>(d.seq) != last[d.id] + 1)
        error = "producer " + std::to_string(d.id) + " datagram " + std::to_string(d.seq) +
                " follows " + std::to_string(last[d.id]);
      last[d.id] = d.seq;
      ++datagrams;
      checked += sizeof d + d.len;
    }
  }
};

// Checks what the reader committed and lets the producers go on as far as
// the log has room for.
void pump(Setup& s, Verifier& v, uint64_t budget_end) {
  v.advance(s.ring.counters().bytes_out);
  const uint64_t allow = std::min(v.checked + kLogBytes - kSlack, budget_end);
  if (allow > s.sh->allow.load()) {
    s.sh->allow.store(allow);
    s.sh->allow_seq.fetch_add(1);
    shared_futex_wake_all(&s.sh->allow_seq);
  }
}

void reap_killed(pid_t pid) {
  int status;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  INFO("a child ended by itself, status " << status);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(WTERMSIG(status) == SIGKILL);
}

struct Run {
  int kills = 0;
  int caught = 0;  // kills after the victim was seen holding its lock
  int next_id = 0;
  uint64_t total = 0;
};

// Kills a random child `kills` times, after some traffic (and every other
// time once it holds its lock), replacing it; then drains the ring.
// Slot 0 is the reader, the others producers, each with a fresh id.
Run kill_loop(Setup& s, Verifier& v, int kills) {
  Run run;
  const int producers = v.dgram ? kProducers : 1;
  auto produce = v.dgram ? dgram_producer : stream_producer;
  std::vector<pid_t> kids(1 + producers);
  kids[0] = spawn(reader, s, v.dgram);
  for (int i = 1; i <= producers; ++i) kids[i] = spawn(produce, s, run.next_id++);
  std::mt19937 rng(42);
  for (; run.kills < kills && s.sh->read_bytes.load() < kMaxTraffic; ++run.kills) {
    const size_t victim = rng() % kids.size();
    const bool inside = run.kills % 2 == 0;
    const uint64_t want = s.sh->read_bytes.load() + 1 + rng() % 100000;
    const uint64_t budget_end = want + kBudget;
    if (!test_support::eventually(
            [&] {
              pump(s, v, budget_end);
              return s.sh->read_bytes.load() >= want;
            },
            5000))
      break;  // no traffic: fails below
    // Inside: a kill holding the lock is likely, not certain (it may let go
    // between the look and the kill; the ring's recovery count says).
    if (inside)
      run.caught += test_support::eventually(
          [&] {
            pump(s, v, budget_end);
            return s.owner(victim == 0) == kids[victim];
          },
          100);
    kill(kids[victim], SIGKILL);
    reap_killed(kids[victim]);
    if (victim == 0)
      kids[0] = spawn(reader, s, v.dgram);
    else if (run.next_id < kMaxIds)
      kids[victim] = spawn(produce, s, run.next_id++);
  }
  for (pid_t pid : kids) {
    kill(pid, SIGKILL);
    reap_killed(pid);
  }
  // The rest, read here.
  uint64_t pos = s.ring.counters().bytes_out;
  for (;;) {
    pump(s, v, UINT64_MAX);
    RingRead rr;
    int64_t r = read_into_log(s, pos, 65536, 0, &rr);
    if (r == -EAGAIN) break;
    REQUIRE(r >= 0);
    pos += static_cast<uint64_t>(r);
  }
  v.advance(pos);
  run.total = pos;
  return run;
}

}  // namespace

TEST_CASE("ring under kill -9: a stream reader gets exactly the committed bytes, in order") {
  Setup s;
  Verifier v{s, false};
  Run run = kill_loop(s, v, 200);
  const RingCounters c = s.ring.counters();
  WARN("stream: " << run.kills << " kills (" << run.caught << " seen holding the lock), "
                  << run.total << " bytes checked, " << c.recoveries
                  << " lock recoveries after a dead owner");
  REQUIRE(run.kills == 200);
  REQUIRE(v.error == "");
  REQUIRE(v.checked == run.total);
  REQUIRE(run.total == c.bytes_in);  // all taken, none twice (below 4 GiB: no wrap)
  uint64_t committed = 0;
  for (int id = 0; id < run.next_id; ++id)
    committed = std::max(committed, s.sh->appended[id].load());
  REQUIRE(run.total >= committed);  // nothing an append returned is lost
  REQUIRE(s.ring.check() == 0);
  REQUIRE(c.recoveries > 0);  // kills did land inside the locks
}

TEST_CASE("ring under kill -9: datagrams from several producers arrive whole, once, in order") {
  Setup s;
  Verifier v{s, true};
  Run run = kill_loop(s, v, 200);
  const RingCounters c = s.ring.counters();
  WARN("datagrams: " << run.kills << " kills (" << run.caught << " seen holding the lock), "
                     << v.datagrams << " datagrams checked, " << c.recoveries
                     << " lock recoveries after a dead owner");
  REQUIRE(run.kills == 200);
  REQUIRE(v.error == "");
  REQUIRE(v.checked == run.total);  // no datagram cut short at the end
  REQUIRE(run.total == c.bytes_in);
  for (int id = 0; id < run.next_id; ++id) {
    const int64_t appended = static_cast<int64_t>(s.sh->appended[id].load());
    INFO("producer " << id);
    REQUIRE(v.last[id] + 1 >= appended);      // every returned append arrived
    REQUIRE(v.last[id] + 1 <= appended + 1);  // and at most the one it was killed in
  }
  REQUIRE(v.datagrams > 1000);
  REQUIRE(s.ring.check() == 0);
  REQUIRE(c.recoveries > 0);
}
