#include "core/domain/ingress_ring.h"

#include <errno.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <new>

#include "core/domain/shared_futex.h"

namespace sockshim::domain {
namespace {

constexpr uint32_t kDataOffset = (sizeof(IngressRingHeader) + 63) / 64 * 64;
constexpr uint32_t kHeader = sizeof(RingRecord);
constexpr int kMaxErrno = 4095;

uint32_t tail_of(uint64_t prod) noexcept {
  return static_cast<uint32_t>(prod);
}
uint32_t head_of(uint64_t cons) noexcept {
  return static_cast<uint32_t>(cons);
}
uint32_t count_of(uint64_t word) noexcept {
  return static_cast<uint32_t>(word >> 32);
}
uint64_t word(uint32_t pos, uint32_t count) noexcept {
  return pos | uint64_t{count} << 32;
}

// The data bytes between head and tail, false when either position is out of
// [0, 2 cap) or they are more than cap apart.
bool used_of(uint64_t prod, uint64_t cons, uint32_t cap, uint32_t* used) noexcept {
  const uint64_t tail = tail_of(prod), head = head_of(cons), span = 2 * uint64_t{cap};
  if (tail >= span || head >= span) return false;
  *used = static_cast<uint32_t>(tail >= head ? tail - head : tail + span - head);
  return *used <= cap;
}

}  // namespace

uint64_t IngressRing::bytes_for(uint32_t capacity) noexcept {
  return uint64_t{kDataOffset} + capacity;
}

int IngressRing::format(void* mem, uint64_t len, uint32_t capacity) noexcept {
  if (capacity < kRingMinCapacity || capacity > kRingMaxCapacity || len < bytes_for(capacity))
    return -EINVAL;
  memset(mem, 0, kDataOffset);
  auto* h = new (mem) IngressRingHeader{};
  h->capacity = capacity;
  h->data_offset = kDataOffset;
  if (int r = h->write_lock.init(); r < 0) return r;
  if (int r = h->read_lock.init(); r < 0) return r;
  std::atomic_thread_fence(std::memory_order_release);
  h->magic = kRingMagic;  // last: a half-written ring is never taken for one
  return 0;
}

uint64_t IngressRing::create(Arena& a, uint32_t capacity, int* err) noexcept {
  if (capacity < kRingMinCapacity || capacity > kRingMaxCapacity) {
    *err = -EINVAL;
    return 0;
  }
  const uint64_t n = bytes_for(capacity);
  uint64_t off = a.alloc(n, err);
  if (off == 0) return 0;
  *err = format(a.at<uint8_t>(off, n), n, capacity);
  if (*err == 0) return off;
  a.free(off);
  return 0;
}

int IngressRing::corrupt(const char* fmt, ...) noexcept {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why_, sizeof why_, fmt, ap);
  va_end(ap);
  failed_ = true;
  return -EUCLEAN;
}

int IngressRing::attach(void* mem, uint64_t len) noexcept {
  h_ = nullptr;
  if (len < sizeof(IngressRingHeader))
    return corrupt("the ring's %llu bytes cannot hold its header",
                   static_cast<unsigned long long>(len));
  auto* h = static_cast<IngressRingHeader*>(mem);
  if (h->magic != kRingMagic)
    return corrupt("bad ring magic 0x%016llx", static_cast<unsigned long long>(h->magic));
  const uint32_t cap = h->capacity;
  if (cap < kRingMinCapacity || cap > kRingMaxCapacity || h->data_offset != kDataOffset ||
      bytes_for(cap) > len)
    return corrupt("the ring's capacity %u or data offset %u does not fit its %llu bytes", cap,
                   h->data_offset, static_cast<unsigned long long>(len));
  h_ = h;
  data_ = static_cast<uint8_t*>(mem) + kDataOffset;
  cap_ = cap;
  failed_ = false;
  why_[0] = '\0';
  return 0;
}

int IngressRing::attach(Arena& a, uint64_t off) noexcept {
  const auto* h = a.at<IngressRingHeader>(off);
  if (!h)
    return corrupt("the ring at offset %llu is outside the arena",
                   static_cast<unsigned long long>(off));
  const uint64_t len = bytes_for(std::min(h->capacity, kRingMaxCapacity));
  void* mem = a.at<uint8_t>(off, len);
  if (!mem)
    return corrupt("the ring at offset %llu with capacity %u runs past the arena",
                   static_cast<unsigned long long>(off), h->capacity);
  return attach(mem, len);
}

uint32_t IngressRing::advance(uint32_t pos, uint64_t n) const noexcept {
  uint64_t p = pos + n;  // pos < 2 cap and n <= cap: one wrap at most
  return static_cast<uint32_t>(p >= 2 * uint64_t{cap_} ? p - 2 * uint64_t{cap_} : p);
}

void IngressRing::copy_in(uint32_t pos, const void* src, size_t n) noexcept {
  if (n == 0) return;
  const uint32_t o = pos < cap_ ? pos : pos - cap_;
  const size_t first = std::min<size_t>(n, cap_ - o);
  memcpy(data_ + o, src, first);
  memcpy(data_, static_cast<const uint8_t*>(src) + first, n - first);
}

void IngressRing::copy_out(uint32_t pos, void* dst, size_t n) const noexcept {
  if (n == 0) return;
  const uint32_t o = pos < cap_ ? pos : pos - cap_;
  const size_t first = std::min<size_t>(n, cap_ - o);
  memcpy(dst, data_ + o, first);
  memcpy(static_cast<uint8_t*>(dst) + first, data_, n - first);
}

int IngressRing::positions(uint64_t prod, uint64_t cons, uint32_t* used) noexcept {
  if (used_of(prod, cons, cap_, used)) return 0;
  return corrupt("the ring's head %u and tail %u do not fit its capacity %u", head_of(cons),
                 tail_of(prod), cap_);
}

// The record at pos, with avail data bytes queued from pos on, checked whole.
int IngressRing::read_record(uint32_t pos, uint32_t avail, RingRecord* r) noexcept {
  if (avail < kHeader)
    return corrupt("a record at position %u is cut short (%u bytes left)", pos, avail);
  copy_out(pos, r, kHeader);
  const bool marker = r->flags == kRecEof || r->flags == kRecError;
  const bool bad_kind = r->flags != 0 && r->flags != kRecMessage && !marker;
  const bool bad_err = r->flags == kRecError ? r->err == 0 || r->err > kMaxErrno : r->err != 0;
  const bool bad_marker = marker && (r->len != 0 || r->name_len != 0);
  if (r->tag != kRecordTag || bad_kind || bad_marker || bad_err || r->name_len > kRingMaxName ||
      (r->name_len && r->flags != kRecMessage))
    return corrupt("the record header at position %u is scribbled (flags %u, tag %u)", pos,
                   r->flags, r->tag);
  if (uint64_t{kHeader} + r->name_len + r->len > avail)
    return corrupt("the record at position %u has %u bytes, more than the %u queued", pos, r->len,
                   avail);
  return 0;
}

int IngressRing::check_records(uint64_t prod, uint64_t cons) noexcept {
  uint32_t used;
  if (positions(prod, cons, &used) < 0) return -EUCLEAN;
  uint32_t pos = head_of(cons), expect = count_of(cons);
  for (bool first = true; used > 0; first = false) {
    RingRecord r;
    if (read_record(pos, used, &r) < 0) return -EUCLEAN;
    const uint32_t taken = first ? count_of(cons) - r.seq_start : 0;
    if (!first && r.seq_start != expect)
      return corrupt("the record at position %u starts at byte %u of the stream, not %u", pos,
                     r.seq_start, expect);
    if (taken > r.len || (taken && r.flags != 0))
      return corrupt("the head record at position %u has %u of its %u bytes taken", pos, taken,
                     r.len);
    expect = r.seq_start + r.len;
    const uint32_t span = kHeader + r.name_len + r.len;
    pos = advance(pos, span);
    used -= span;
  }
  if (expect != count_of(prod))
    return corrupt("the queued records end at byte %u of the stream, the producers say %u", expect,
                   count_of(prod));
  return 0;
}

int IngressRing::check() noexcept {
  if (failed_) return -EUCLEAN;
  if (h_->magic != kRingMagic || h_->capacity != cap_ || h_->data_offset != kDataOffset)
    return corrupt("the ring's header was overwritten");
  if (int r = lock(h_->read_lock); r < 0) return r;
  int r = check_records(h_->prod.load(std::memory_order_acquire),
                        h_->cons.load(std::memory_order_relaxed));
  unlock(h_->read_lock);
  return r;
}

int IngressRing::lock(RobustMutex& m) noexcept {
  bool repaired = false;
  int r = lock_repaired(m, kRingLockTimeoutMs, [&] {
    // A dead owner either stored its word or did not: the ring is whole
    // either way, and checking it is all there is to do.
    // It may have died between its commit and the wake-up it owed (made
    // under the lock for this reason): unlock() wakes everyone.
    repaired = true;
    kick_ = true;
    h_->recoveries.fetch_add(1, std::memory_order_relaxed);
    return check_records(h_->prod.load(std::memory_order_acquire),
                         h_->cons.load(std::memory_order_acquire)) == 0;
  });
  switch (r) {
    case 0:
    case -ETIMEDOUT:
      return r;
    case -EUCLEAN:
      return corrupt("a lock of the ring was overwritten");
    case -ENOTRECOVERABLE:
      if (repaired) return -EUCLEAN;  // why_ says what the check found
      return corrupt("the ring's lock is unrecoverable (a check after a dead process failed)");
    default:
      return corrupt("the ring's lock failed: %s", strerror(-r));
  }
}

void IngressRing::unlock(RobustMutex& m) noexcept {
  m.unlock();
  if (kick_.exchange(false)) wake_all();
}

void IngressRing::wake_all() noexcept {
  if (failed_) return;
  wake_readers();
  wake_writers();
  fire(kNotifyData | kNotifySpace | kNotifyEmpty);
}

// Readers asleep learn of an append, writers of room; neither costs a
// syscall while nobody sleeps (the side that changes the ring reads the
// waiters count after its commit, a waiter counts itself before it looks at
// the ring: one of the two sees the other).
void IngressRing::wake_readers() noexcept {
  h_->data_seq.fetch_add(1, std::memory_order_seq_cst);
  if (h_->readers_waiting.load(std::memory_order_seq_cst)) shared_futex_wake_all(&h_->data_seq);
}

void IngressRing::wake_writers() noexcept {
  h_->space_seq.fetch_add(1, std::memory_order_seq_cst);
  if (h_->writers_waiting.load(std::memory_order_seq_cst)) shared_futex_wake_all(&h_->space_seq);
}

void IngressRing::fire(uint32_t events) noexcept {
  if (!notify_fn_) return;
  uint32_t got = h_->notify.fetch_and(~events, std::memory_order_acq_rel) & events;
  if (got) notify_fn_(notify_ctx_, got);
}

ssize_t IngressRing::append_locked(std::span<const uint8_t> bytes, uint16_t flags,
                                   std::span<const uint8_t> name, int err) noexcept {
  const uint64_t prod = h_->prod.load(std::memory_order_relaxed);
  const uint64_t cons = h_->cons.load(std::memory_order_acquire);
  uint32_t used;
  if (positions(prod, cons, &used) < 0) return -EUCLEAN;
  const uint64_t room = cap_ - used;
  uint64_t n = bytes.size();
  if (flags == 0) {  // stream bytes: what fits
    if (room <= kHeader) return -EAGAIN;
    n = std::min<uint64_t>(n, room - kHeader);
  } else if (kHeader + name.size() + n > cap_) {
    return -EMSGSIZE;
  } else if (kHeader + name.size() + n > room) {
    return -EAGAIN;
  }
  const uint32_t tail = tail_of(prod), in = count_of(prod);
  RingRecord r{static_cast<uint32_t>(n),  flags, static_cast<uint8_t>(name.size()), kRecordTag, in,
               static_cast<uint32_t>(err)};
  copy_in(tail, &r, kHeader);
  copy_in(advance(tail, kHeader), name.data(), name.size());
  copy_in(advance(tail, kHeader + name.size()), bytes.data(), n);
  // The commit: before this store the record is invisible, after it whole.
  h_->prod.store(word(advance(tail, kHeader + name.size() + n), in + static_cast<uint32_t>(n)),
                 std::memory_order_seq_cst);
  return static_cast<ssize_t>(n);
}

ssize_t IngressRing::append(std::span<const uint8_t> bytes, uint16_t flags,
                            std::span<const uint8_t> name) noexcept {
  if (failed_) return -EUCLEAN;
  if ((flags != 0 && flags != kRecMessage) || name.size() > kRingMaxName ||
      (!name.empty() && flags != kRecMessage))
    return -EINVAL;
  if (flags == 0 && bytes.empty()) return 0;
  if (bytes.size() > cap_) {
    if (flags) return -EMSGSIZE;
    bytes = bytes.first(cap_);
  }
  if (int r = lock(h_->write_lock); r < 0) return r;
  ssize_t n = append_locked(bytes, flags, name, 0);
  if (n >= 0) wake_readers();  // under the lock: see lock()
  unlock(h_->write_lock);
  if (n >= 0 && (h_->notify.load(std::memory_order_seq_cst) & kNotifyData)) fire(kNotifyData);
  return n;
}

int IngressRing::append_marker(uint16_t kind, int err) noexcept {
  if (failed_) return -EUCLEAN;
  if (kind == kRecEof ? err != 0 : kind != kRecError || err <= 0 || err > kMaxErrno) return -EINVAL;
  if (int r = lock(h_->write_lock); r < 0) return r;
  ssize_t n = append_locked({}, kind, {}, err);
  if (n >= 0) wake_readers();
  unlock(h_->write_lock);
  if (n < 0) return static_cast<int>(n);
  if (h_->notify.load(std::memory_order_seq_cst) & kNotifyData) fire(kNotifyData);
  return 0;
}

int IngressRing::recv_locked(const iovec* iov, size_t iovcnt, bool peek, RingRead* out,
                             bool* took) noexcept {
  const uint64_t cons = h_->cons.load(std::memory_order_relaxed);
  const uint64_t prod = h_->prod.load(std::memory_order_acquire);
  uint32_t used;
  if (positions(prod, cons, &used) < 0) return -EUCLEAN;
  if (used == 0) return -EAGAIN;
  uint32_t head = head_of(cons), out_count = count_of(cons);
  size_t vi = 0, voff = 0;  // the next iovec byte to fill
  // Copies up to n bytes from ring position pos into the iovecs.
  auto put = [&](uint32_t pos, size_t n) {
    size_t done = 0;
    for (; vi < iovcnt && done < n; voff = 0, ++vi) {
      size_t k = std::min(n - done, iov[vi].iov_len - voff);
      copy_out(advance(pos, done), static_cast<uint8_t*>(iov[vi].iov_base) + voff, k);
      done += k;
      voff += k;
      if (voff < iov[vi].iov_len) break;
    }
    return done;
  };
  while (used > 0) {
    RingRecord r;
    if (read_record(head, used, &r) < 0) return -EUCLEAN;
    const uint32_t taken = out_count - r.seq_start;
    if (taken > r.len || (taken && r.flags != 0))
      return corrupt("the head record at position %u has %u of its %u bytes taken", head, taken,
                     r.len);
    const uint32_t span = kHeader + r.name_len + r.len;
    if (r.flags != 0 && out->copied > 0) break;  // a datagram or marker is read alone
    if (r.flags == kRecEof) {
      out->eof = true;
      break;
    }
    if (r.flags == kRecError) {
      out->err = static_cast<int>(r.err);
      head = advance(head, span);
      break;
    }
    if (r.flags == kRecMessage) {
      out->message = true;
      out->len = r.len;
      out->name_len = r.name_len;
      copy_out(advance(head, kHeader), out->name, r.name_len);
      out->copied = put(advance(head, kHeader + r.name_len), r.len);
      head = advance(head, span);
      out_count += r.len;
      break;
    }
    const size_t n = put(advance(head, kHeader + taken), r.len - taken);
    out->copied += n;
    out_count += static_cast<uint32_t>(n);
    if (taken + n < r.len) break;  // the iovecs are full: the rest stays
    head = advance(head, span);
    used -= span;
  }
  if (peek || word(head, out_count) == cons) return 0;
  // The commit: one store takes what was read, and nothing before it does.
  h_->cons.store(word(head, out_count), std::memory_order_seq_cst);
  *took = true;
  return 0;
}

int IngressRing::recv(const iovec* iov, size_t iovcnt, int flags, RingRead* out) noexcept {
  out->copied = out->len = 0;
  out->message = out->eof = false;
  out->err = 0;
  out->name_len = 0;
  if (failed_) return -EUCLEAN;
  if (int r = lock(h_->read_lock); r < 0) return r;
  bool took = false;
  int r = recv_locked(iov, iovcnt, flags & MSG_PEEK, out, &took);
  if (took) wake_writers();  // under the lock: see lock()
  unlock(h_->read_lock);
  if (!took) return r;
  if (uint32_t armed = h_->notify.load(std::memory_order_seq_cst))
    fire(armed & (kNotifySpace | (readable() ? 0 : kNotifyEmpty)));
  return r;
}

bool IngressRing::readable() const noexcept {
  return tail_of(h_->prod.load(std::memory_order_seq_cst)) !=
         head_of(h_->cons.load(std::memory_order_seq_cst));
}

uint64_t IngressRing::queued_bytes() const noexcept {
  return count_of(h_->prod.load(std::memory_order_acquire)) -
         count_of(h_->cons.load(std::memory_order_acquire));
}

uint64_t IngressRing::room() const noexcept {
  uint32_t used;
  if (!used_of(h_->prod.load(std::memory_order_seq_cst), h_->cons.load(std::memory_order_seq_cst),
               cap_, &used))
    return 0;
  return cap_ - used;
}

bool IngressRing::writable(size_t payload, size_t name_len) const noexcept {
  return room() >= kHeader + name_len + payload;
}

RingCounters IngressRing::counters() const noexcept {
  return {count_of(h_->prod.load(std::memory_order_acquire)),
          count_of(h_->cons.load(std::memory_order_acquire)),
          h_->recoveries.load(std::memory_order_relaxed)};
}

int IngressRing::wait_readable(const timespec* deadline) noexcept {
  if (failed_) return -EUCLEAN;
  while (!readable()) {
    // Counted before the word is read and the ring looked at again: a
    // writer that commits after the look sees the count and wakes us.
    h_->readers_waiting.fetch_add(1, std::memory_order_seq_cst);
    const uint32_t seq = h_->data_seq.load(std::memory_order_seq_cst);
    int r = readable() ? 0 : shared_futex_wait(&h_->data_seq, seq, deadline);
    h_->readers_waiting.fetch_sub(1, std::memory_order_seq_cst);
    if (r < 0) return r;
  }
  return 0;
}

int IngressRing::wait_writable(size_t payload, size_t name_len, const timespec* deadline) noexcept {
  if (failed_) return -EUCLEAN;
  if (kHeader + name_len + payload > cap_) return -EMSGSIZE;
  while (!writable(payload, name_len)) {
    h_->writers_waiting.fetch_add(1, std::memory_order_seq_cst);
    const uint32_t seq = h_->space_seq.load(std::memory_order_seq_cst);
    int r = writable(payload, name_len) ? 0 : shared_futex_wait(&h_->space_seq, seq, deadline);
    h_->writers_waiting.fetch_sub(1, std::memory_order_seq_cst);
    if (r < 0) return r;
  }
  return 0;
}

uint32_t IngressRing::arm_notify(uint32_t events) noexcept {
  h_->notify.fetch_or(events, std::memory_order_seq_cst);
  uint32_t now = 0;
  if (readable())
    now |= kNotifyData;
  else
    now |= kNotifyEmpty;
  if (writable(1)) now |= kNotifySpace;
  return now & events;
}

}  // namespace sockshim::domain
