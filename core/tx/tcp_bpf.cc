#include "core/tx/tcp_bpf.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <vector>

#include "core/domain/domain.h"
#include "core/domain/sock_ring.h"
#include "core/maps/bpf_helpers.h"
#include "core/maps/loaded_policy.h"
#include "core/psock/sk_msg_queue.h"
#include "core/sock/blocked_waits.h"
#include "core/sock/errno_saver.h"
#include "core/sock/log.h"
#include "core/sock/real.h"
#include "core/tx/sk_msg_ring.h"
#include "policy/compiled.h"

namespace sockshim {
namespace {

using policy::SkMsg;
using policy::Verdict;

// A verdict that already ran on the bytes about to be sent (sendfile asks the
// program before it reads the file).
struct PreRun {
  Verdict verdict = Verdict::pass;
  Socket* target = nullptr;
  uint64_t remote = 0;  // or a socket another process holds (SockHelpers::take_remote)
  bool ingress = false;
  uint32_t apply_bytes = 0, cork_bytes = 0;
};

struct SendCtx {
  int fd;
  Socket* sk;
  Psock* psock;
  Psock& e;
  const policy::Program& prog;
  const LoadedPolicy& lp;
  policy::SocketTuple tuple;
  int flags;
  bool nonblock;
  bool real_error = false;  // the error came from a real send, which raised SIGPIPE itself
  std::optional<PreRun> prerun;
  // Counters: the message this call is working on (the cork or its own), the
  // bytes it counted in, which is all a short count can give back, and counts
  // not yet published (they go with the next change, before anything waits).
  const SkMsg* flight = nullptr;
  uint64_t taken = 0;
  TxStep pending;
};

// What the send path holds right now: its cork and the message in flight.
uint64_t held(const SendCtx& c) noexcept {
  uint64_t n = c.flight ? c.flight->size() : 0;
  if (c.e.cork_alloc && &c.e.cork != c.flight) n += c.e.cork.size();
  return n;
}

// Counts step later, with the next tx_count: nothing waits in between.
void tx_note(SendCtx& c, const TxStep& step) noexcept {
  TxStep& p = c.pending;
  p.in += step.in;
  p.pushed += step.pushed;
  p.popped += step.popped;
  p.runs += step.runs;
}

// Publishes step, what is pending, and the bytes held now.
void tx_count(SendCtx& c, TxStep step) noexcept {
  const TxStep& p = c.pending;
  step.in += p.in;
  step.pushed += p.pushed;
  step.popped += p.popped;
  step.runs += p.runs;
  c.pending = {};
  tx_commit(c.e.stats.tx, step, held(c));
}

// Publishes what is pending, if anything.
void tx_flush(SendCtx& c) noexcept {
  const TxStep& p = c.pending;
  if (p.in || p.pushed || p.popped || p.runs) tx_count(c, {});
}

// freed bytes of this call's message are gone. The caller was told about
// those its count gives back (give_back) as bytes it never handed over; the
// rest (corked bytes of earlier calls, bytes push_data made, or bytes a dead
// redirect target cost) were dropped.
void count_freed(SendCtx& c, uint64_t freed, bool give_back, TxStep step = {}) noexcept {
  uint64_t back = give_back ? std::min(freed, c.taken) : 0;
  c.taken -= back;
  step.in -= static_cast<int64_t>(back);
  step.dropped += freed - back;
  tx_count(c, step);
}

// sk_msg_apply_bytes
void apply_bytes(Psock* psock, uint32_t bytes) noexcept {
  if (psock->apply_bytes)
    psock->apply_bytes = psock->apply_bytes < bytes ? 0 : psock->apply_bytes - bytes;
}

void reset_eval(Psock& e) noexcept {
  e.eval = SkEval::none;
  e.sk_redir = nullptr;
  e.redir_cookie = 0;
}

// tcp_bpf_push: the first n bytes of msg out of fd, erased from msg as they go.
// A partial element goes with MSG_MORE. A blocking sender whose real send came
// back short was interrupted: the rest is an error, as the kernel's retry would
// be. wait_writable: fd is another socket (egress redirect) whose own O_NONBLOCK
// must not make a blocking sender fail.
int push(int fd, SkMsg& msg, uint32_t n, int flags, bool nonblock, bool wait_writable) noexcept {
  ErrnoSaver saved;
  while (n > 0) {
    int f = flags;
    if (n < msg.size()) f |= MSG_MORE;
    ssize_t r = real::send(fd, msg.bytes().data(), n, f);
    if (r < 0) {
      int err = errno;
      if (err == EAGAIN && wait_writable && !nonblock) {
        pollfd pf{fd, POLLOUT, 0};
        if (real::poll(&pf, 1, -1) < 0) return -errno;
        continue;
      }
      return -err;
    }
    sk_msg_consume_front(msg, static_cast<uint32_t>(r));
    n -= static_cast<uint32_t>(r);
    if (n > 0 && !nonblock && !wait_writable) return -EINTR;
  }
  return 0;
}

// bpf_tcp_ingress: moves the first `bytes` of msg into target's ingress queue
// and erases them from msg. 0 once all moved; -EAGAIN when the queue is full
// and the sender does not wait; -EINTR when a signal interrupted the wait
// (what moved stays moved and is gone from msg); -ENOMEM, msg untouched, when
// memory is short. A target that left its maps takes the bytes and discards
// them, as the kernel's stopping psock does. A waiting sender sleeps until
// the target's reader frees room or the target stops. sender_fd (or -1) is
// asked for O_NONBLOCK before a wait.
int bpf_tcp_ingress(Psock* target, SkMsg& msg, uint32_t bytes, bool nonblock,
                    int sender_fd) noexcept {
  const size_t limit = sk_psock_queue_limit(target);
  g_ingress_used.store(true, std::memory_order_relaxed);
  while (bytes > 0) {
    if (sk_psock_stopping(target)) {
      sk_msg_consume_front(msg, bytes);
      return 0;
    }
    domain::SockRing* ring = sk_psock_ring(target);
    if (size_t room = sk_psock_msg_room(target, limit, bytes); room > 0) {
      uint32_t n = static_cast<uint32_t>(std::min<size_t>(room, bytes));
      if (ring) {
        // The target's shared ring: another process's append may have taken
        // the room meanwhile, so what went is what append says.
        size_t put = sk_psock_ring_push(target, ring, {msg.bytes().data(), n});
        sk_msg_consume_front(msg, static_cast<uint32_t>(put));
        bytes -= static_cast<uint32_t>(put);
        if (put > 0) continue;
      } else {
        // The node first: short of memory, msg keeps its bytes.
        SkMsgNode node;
        if (int r = sk_msg_node_init(&node)) return r;
        try {
          node.front().bytes = sk_msg_take_front(msg, n);  // takes nothing when it throws
        } catch (...) {
          return -ENOMEM;
        }
        sk_psock_queue_msg(target, std::move(node));
        bytes -= n;
        continue;
      }
    }
    ErrnoSaver saved;
    // The shim's O_NONBLOCK record can miss a change made behind its back: ask.
    if (nonblock || (sender_fd >= 0 && fd_nonblocking(sender_fd))) return -EAGAIN;
    int sfd = sk_psock_space_fd(target);
    if (sfd < 0) return -ENOMEM;
    // Drain, then look: room freed after the look signals the fd again.
    target->space_waiters.fetch_add(1, std::memory_order_acq_rel);
    eventfd_drain(sfd);
    // A reader in another process rings this process's bell when it makes room.
    if (ring) sk_psock_ring_arm(target, ring);
    if (sk_psock_msg_room(target, limit, bytes) == 0 && !sk_psock_stopping(target)) {
      pollfd pf{sfd, POLLIN, 0};
      int r = blocked_wait(true, [&] { return real::poll(&pf, 1, -1); });
      if (r < 0 && errno == EINTR) {
        target->space_waiters.fetch_sub(1, std::memory_order_acq_rel);
        return -EINTR;
      }
    }
    target->space_waiters.fetch_sub(1, std::memory_order_acq_rel);
  }
  return 0;
}

// bpf_tcp_ingress into the shared ring of a socket that only another process
// of the domain holds: its readers there are woken through their bells. A
// full ring makes a blocking sender wait on the ring's own futex (the reader
// that makes room wakes it), a non-blocking one get EAGAIN.
int remote_ingress(SendCtx& c, uint64_t cookie, SkMsg& msg, uint32_t bytes) noexcept {
  domain::Domain* d = domain::own_domain();
  domain::SockRing* r = d ? domain::SockRing::peer(*d, cookie) : nullptr;
  if (!r) return -EPIPE;
  g_ingress_used.store(true, std::memory_order_relaxed);
  while (bytes > 0) {
    ssize_t n = r->ring().append({msg.bytes().data(), bytes});
    if (n > 0) {
      sk_msg_consume_front(msg, static_cast<uint32_t>(n));
      bytes -= static_cast<uint32_t>(n);
      continue;
    }
    if (n != -EAGAIN) return -EPIPE;
    ErrnoSaver saved;
    if (c.nonblock || fd_nonblocking(c.fd)) return -EAGAIN;
    int w = blocked_wait(true, [&] { return r->ring().wait_writable(1, 0, nullptr); });
    if (w == -EINTR) return -EINTR;
  }
  return 0;
}

// tcp_bpf_sendmsg_redir: the first `bytes` of msg into the target's ingress
// queue or out of the target. A target that is gone (its psock dropped, its
// record reused) is EPIPE.
int sendmsg_redir(SendCtx& c, Socket* target, uint64_t cookie, bool ingress, SkMsg& msg,
                  uint32_t bytes) noexcept {
  if (!target && cookie && ingress) return remote_ingress(c, cookie, msg, bytes);
  if (!target || target->cookie != cookie) return -EPIPE;
  PsockRef tp = psock_get(target);
  if (!tp || target->cookie != cookie) return -EPIPE;
  if (ingress) return bpf_tcp_ingress(tp.get(), msg, bytes, c.nonblock, c.fd);
  int tfd = socket_fd(target);
  if (tfd < 0) return -EPIPE;
  int r = push(tfd, msg, bytes, c.flags, c.nonblock, true);
  if (r < 0) c.real_error = true;
  return r;
}

// One run of the sk_msg program on msg, counted: the verdict, with a redirect
// that found no target turned into the drop the kernel makes of it.
Verdict run_program(SendCtx& c, SkMsg& msg, Socket** target, bool* ingress,
                    uint64_t* remote) noexcept {
  Verdict v = Verdict::drop;
  try {
    SockHelpers helpers(c.lp, policy::ProgramType::sk_msg, c.sk, c.fd);
    policy::RunResult res = c.prog.run_msg(msg, c.tuple, helpers);
    PsockRef t = helpers.take_redirect();
    v = res.verdict;
    if (v == Verdict::redirect) {
      if (t) {
        *target = t->sk();
        *ingress = helpers.redirect_ingress();
      } else if (uint64_t cookie = helpers.take_remote()) {
        *remote = cookie;
        *ingress = true;
      } else {
        v = Verdict::drop;
      }
    }
    rule_stats_count(c.prog, res.rule, v);
  } catch (const std::exception& ex) {
    ErrnoSaver saved;
    log::internal_error("sk_msg verdict", ex.what());
    v = Verdict::drop;
  }
  tx_note(c, {.runs = 1});
  return v;
}

// Runs the program on msg (sk_psock_msg_verdict), or takes the pre-run
// verdict, and records eval, the redirect target and apply_bytes.
void run_verdict(SendCtx& c, SkMsg& msg) noexcept {
  Verdict v = Verdict::drop;
  Socket* target = nullptr;
  uint64_t remote = 0;
  bool ingress = false;
  if (c.prerun) {
    v = c.prerun->verdict;
    target = c.prerun->target;
    remote = c.prerun->remote;
    ingress = c.prerun->ingress;
    msg.apply_bytes(c.prerun->apply_bytes);
    msg.cork_bytes(c.prerun->cork_bytes);
    c.prerun.reset();
  } else {
    v = run_program(c, msg, &target, &ingress, &remote);
  }
  c.psock->apply_bytes = msg.apply_bytes();
  c.e.eval = v == Verdict::pass   ? SkEval::pass
             : v == Verdict::drop ? SkEval::drop
                                  : SkEval::redirect;
  if (v == Verdict::redirect) {
    c.e.sk_redir = target;
    c.e.redir_cookie = target ? target->cookie : remote;
    c.e.redir_ingress = ingress;
  }
}

// A redirect whose target is gone (or went away mid-send) cost the bytes it
// could not deliver; a full target only delayed them, and the caller's count
// says so.
bool target_gone(int err) noexcept {
  return err == -EPIPE || err == -ECONNRESET || err == -ENOTCONN;
}

// tcp_bpf_send_verdict. msg is the corked message when is_cork.
int send_verdict(SendCtx& c, SkMsg& msg, bool is_cork, int64_t* copied, bool enospc) noexcept {
  Psock* psock = c.psock;
  Psock& e = c.e;
  for (;;) {
    int64_t delta = 0;
    if (e.eval == SkEval::none) {
      delta = msg.size();
      run_verdict(c, msg);
      delta -= msg.size();
      if (delta)
        tx_note(c, {.pushed = delta < 0 ? static_cast<uint64_t>(-delta) : 0,
                    .popped = delta > 0 ? static_cast<uint64_t>(delta) : 0});
    }
    if (msg.cork_bytes() && msg.cork_bytes() > msg.size() && !enospc) {
      psock->cork_bytes = msg.cork_bytes() - msg.size();
      if (!is_cork) {
        e.cork = std::move(msg);
        e.cork_alloc = true;
        c.flight = &e.cork;
      }
      return 0;
    }
    uint32_t tosend = msg.size();
    if (psock->apply_bytes && psock->apply_bytes < tosend) tosend = psock->apply_bytes;
    int ret = 0;
    bool cork_freed = false;
    const uint32_t before = msg.size();
    // A dump while the bytes go out (a send may wait) sees them held.
    if (e.eval != SkEval::drop) tx_count(c, {});
    switch (e.eval) {
      case SkEval::pass:
        ret = push(c.fd, msg, tosend, c.flags, c.nonblock, false);
        if (ret) {
          c.real_error = true;
          uint32_t freed = sk_msg_free(msg);
          *copied -= freed;
          count_freed(c, freed, true, {.passed = before - freed});
          break;
        }
        tx_count(c, {.passed = before - msg.size()});
        apply_bytes(psock, tosend);
        break;
      case SkEval::redirect: {
        Socket* target = e.sk_redir;
        uint64_t cookie = e.redir_cookie;
        bool ingress = e.redir_ingress;
        apply_bytes(psock, tosend);
        if (!psock->apply_bytes) reset_eval(e);
        bool cork = e.cork_alloc;
        e.cork_alloc = false;
        ret = sendmsg_redir(c, target, cookie, ingress, msg, tosend);
        TxStep step{.redirected = before - msg.size()};
        uint32_t freed = 0;
        if (ret < 0) {
          freed = sk_msg_free(msg);
          if (!cork) *copied -= freed;
        }
        if (cork) {
          // After a redirect the cork is freed, with what it still held.
          freed += sk_msg_free(msg);
          e.cork = SkMsg();
          cork_freed = true;
        }
        count_freed(c, freed, ret < 0 && !cork && !target_gone(ret), step);
        if (cork) ret = 0;
        break;
      }
      default:
        tx_count(c, {.dropped = sk_msg_free(msg)});
        apply_bytes(psock, tosend);
        *copied -= static_cast<int64_t>(tosend) + delta;
        // The kernel's drop is sticky (eval is never reset); a program may ask
        // for a drop of this message only.
        if (!c.prog.compiled().sticky_drop) reset_eval(e);
        return -EACCES;
    }
    if (ret == 0) {
      if (!psock->apply_bytes) reset_eval(e);
      if (!cork_freed && msg.size() > 0) continue;
    }
    return ret;
  }
}

// For a program that reads no bytes (needs_data() false: no data condition,
// no pull/push/pop): its verdict on a message of n bytes, without copying the
// caller's bytes. The message is a per-thread scratch the program never reads.
bool probe_verdict(SendCtx& c, size_t n, PreRun* pre) noexcept {
  thread_local SkMsg probe;
  try {
    probe.mutable_bytes().resize(n);
  } catch (...) {
    return false;
  }
  probe.apply_bytes(0);
  probe.cork_bytes(0);
  sk_msg_reset_window(probe);
  pre->verdict = run_program(c, probe, &pre->target, &pre->ingress, &pre->remote);
  pre->apply_bytes = probe.apply_bytes();
  pre->cork_bytes = probe.cork_bytes();
  return true;
}

bool plain_pass(const PreRun& p) noexcept {
  return p.verdict == Verdict::pass && p.apply_bytes == 0 && p.cork_bytes == 0;
}

// Moves the position (iovec *iv, offset *off) in iov past bytes.
void iov_advance(const iovec* iov, size_t* iv, size_t* off, size_t bytes) noexcept {
  while (bytes > 0) {
    size_t n = std::min(bytes, iov[*iv].iov_len - *off);
    bytes -= n;
    *off += n;
    if (*off == iov[*iv].iov_len) {
      ++*iv;
      *off = 0;
    }
  }
}

// push() for bytes still in the caller's iovecs, from iovec *iv at offset
// *off, which it moves past what it sent. Returns the bytes sent; *err is set
// when it stopped short.
size_t push_iov(int fd, const iovec* iov, size_t iovcnt, size_t* iv, size_t* off, size_t bytes,
                int flags, bool nonblock, int* err) noexcept {
  ErrnoSaver saved;
  iovec local[64];
  size_t remaining = bytes;
  while (remaining > 0) {
    size_t cnt = 0, want = 0;
    for (size_t k = *iv, o = *off; k < iovcnt && want < remaining && cnt < 64; ++k, o = 0) {
      size_t n = std::min(iov[k].iov_len - o, remaining - want);
      if (n) local[cnt++] = {static_cast<char*>(iov[k].iov_base) + o, n};
      want += n;
    }
    msghdr m{};
    m.msg_iov = local;
    m.msg_iovlen = cnt;
    ssize_t r = real::sendmsg(fd, &m, flags);
    if (r < 0) {
      *err = -errno;
      return bytes - remaining;
    }
    remaining -= static_cast<size_t>(r);
    iov_advance(iov, iv, off, static_cast<size_t>(r));
    if (static_cast<size_t>(r) < want && !nonblock) {
      *err = -EINTR;
      return bytes - remaining;
    }
  }
  return bytes;
}

// tcp_bpf_sendmsg under the psock's tx lock.
ssize_t sendmsg_locked(SendCtx& c, const iovec* iov, size_t iovcnt) noexcept {
  Psock* psock = c.psock;
  Psock& e = c.e;
  size_t size = 0;
  for (size_t i = 0; i < iovcnt; ++i) size += iov[i].iov_len;
  int64_t copied = 0;
  int err = 0;
  size_t left = size, iv = 0, off = 0;
  while (left > 0) {
    // A program that reads no bytes and passes them all: they go out from the
    // caller's buffers, as they would unchanged from the copy.
    if (!e.cork_alloc && e.eval == SkEval::none && psock->cork_bytes == 0 && !c.prerun &&
        !c.prog.needs_data()) {
      const size_t chunk = std::min(left, size_t{kSkMsgMaxBytes});
      PreRun pre;
      if (probe_verdict(c, chunk, &pre)) {
        if (plain_pass(pre)) {
          psock->apply_bytes = 0;
          int perr = 0;
          size_t sent = push_iov(c.fd, iov, iovcnt, &iv, &off, chunk, c.flags, c.nonblock, &perr);
          copied += static_cast<int64_t>(sent);
          tx_count(c, {.in = static_cast<int64_t>(sent), .passed = sent});
          left -= chunk;
          while (iv < iovcnt && iov[iv].iov_len == 0) ++iv;
          if (perr) {
            c.real_error = true;
            err = perr;
            break;
          }
          continue;
        }
        c.prerun = pre;
      }
    }
    SkMsg tmp;
    const bool is_cork = e.cork_alloc;
    SkMsg& msg_tx = is_cork ? e.cork : tmp;
    c.flight = &msg_tx;
    const uint32_t osize = msg_tx.size();
    size_t copy = left;
    bool enospc = false;
    if (osize + copy > kSkMsgMaxBytes) {
      enospc = true;
      copy = osize < kSkMsgMaxBytes ? kSkMsgMaxBytes - osize : 0;
    }
    try {
      auto& bytes = msg_tx.mutable_bytes();
      bytes.reserve(osize + copy);
      for (size_t need = copy; need > 0;) {
        size_t n = std::min(need, iov[iv].iov_len - off);
        const auto* src = static_cast<const uint8_t*>(iov[iv].iov_base) + off;
        bytes.insert(bytes.end(), src, src + n);
        need -= n;
        off += n;
        if (off == iov[iv].iov_len) {
          ++iv;
          off = 0;
        }
      }
    } catch (...) {
      msg_tx.mutable_bytes().resize(osize);
      sk_msg_reset_window(msg_tx);
      err = -ENOMEM;
      break;
    }
    sk_msg_reset_window(msg_tx);
    copied += static_cast<int64_t>(copy);
    c.taken += copy;
    tx_note(c, {.in = static_cast<int64_t>(copy)});
    left -= copy;
    // Skip empty iovecs so the next copy starts at data.
    while (iv < iovcnt && iov[iv].iov_len == 0) ++iv;
    if (psock->cork_bytes) {
      // The caller's whole size counts against the cork, as in the kernel.
      psock->cork_bytes =
          size > psock->cork_bytes ? 0 : psock->cork_bytes - static_cast<uint32_t>(size);
      if (psock->cork_bytes && !enospc) break;
      // All cork bytes are accounted: run the program again on the whole message.
      reset_eval(e);
      psock->cork_bytes = 0;
    }
    err = send_verdict(c, msg_tx, is_cork, &copied, enospc);
    c.flight = nullptr;
    if (err < 0) break;
  }
  // Bytes that went into the cork, a run that ended in it.
  tx_flush(c);
  if (copied > 0) return static_cast<ssize_t>(copied);
  if (err < 0) {
    // sk_stream_error: EPIPE raises SIGPIPE unless MSG_NOSIGNAL (a real send did it already).
    if (err == -EPIPE && !(c.flags & MSG_NOSIGNAL) && !c.real_error) raise(SIGPIPE);
    return err;
  }
  return 0;
}

struct Active {
  PsockRef psock;
  const policy::Program* prog = nullptr;
  std::shared_ptr<const LoadedPolicy> lp;
};

Active active(Socket* sk) noexcept {
  Active a;
  if (!tcp_bpf_socket(*sk)) return a;
  domain_policy_sync();  // a reload in another member of the domain applies from here
  a.psock = psock_get(sk);
  if (!a.psock) return a;
  a.prog = a.psock->progs.msg_parser.load(std::memory_order_acquire);
  if (a.prog) a.lp = policy_of(a.prog);  // its own policy, also mid-reload
  if (!a.lp) a.prog = nullptr;
  return a;
}

}  // namespace

ssize_t tcp_bpf_sendmsg(int fd, Socket* sk, const iovec* iov, size_t iovcnt, int flags) noexcept {
  Active a = active(sk);
  if (!a.prog) {
    msghdr m{};
    m.msg_iov = const_cast<iovec*>(iov);
    m.msg_iovlen = iovcnt;
    ssize_t r = real::sendmsg(fd, &m, flags);
    return r < 0 ? -errno : r;
  }
  Psock& e = *a.psock.get();
  std::lock_guard g(e.tx_lock);
  SendCtx c{fd,
            sk,
            a.psock.get(),
            e,
            *a.prog,
            *a.lp,
            socket_tuple(*sk),
            flags,
            (flags & MSG_DONTWAIT) || sk->nonblocking.load(std::memory_order_relaxed),
            false,
            std::nullopt};
  return sendmsg_locked(c, iov, iovcnt);
}

ssize_t tcp_bpf_sendfile(int out, Socket* sk, int in, off64_t* offset, size_t count) noexcept {
  ErrnoSaver saved;
  Active a = active(sk);
  if (!a.prog) {
    ssize_t r = real::sendfile64(out, in, offset, count);
    return r < 0 ? -errno : r;
  }
  // Splice hands the socket one pipe-full at a time: one tcp_bpf_sendmsg each.
  constexpr size_t kPipeBytes = 65536;
  Psock& e = *a.psock.get();
  const bool nonblock = sk->nonblocking.load(std::memory_order_relaxed);
  const bool zero_copy = !a.prog->needs_data();
  std::vector<uint8_t> buf;
  size_t done = 0;
  while (done < count) {
    const size_t n = std::min(kPipeBytes, count - done);
    std::lock_guard g(e.tx_lock);
    SendCtx c{out, sk,       a.psock.get(), e,           *a.prog, *a.lp, socket_tuple(*sk),
              0,   nonblock, false,         std::nullopt};
    Psock* psock = a.psock.get();
    if (zero_copy && e.eval == SkEval::none && !e.cork_alloc && psock->cork_bytes == 0) {
      // The program reads no bytes: ask it about a message of this size, and
      // when it passes the whole of it, let the kernel send the file itself.
      PreRun pre;
      if (!probe_verdict(c, n, &pre)) return done ? static_cast<ssize_t>(done) : -ENOMEM;
      if (plain_pass(pre)) {
        ssize_t r = real::sendfile64(out, in, offset, n);
        if (r <= 0) {
          if (r < 0) r = -errno;
          tx_flush(c);
          return done ? static_cast<ssize_t>(done) : r;
        }
        tx_count(c, {.in = r, .passed = static_cast<uint64_t>(r)});
        done += static_cast<size_t>(r);
        if (static_cast<size_t>(r) < n) break;
        continue;
      }
      c.prerun = pre;
    }
    try {
      buf.resize(n);
    } catch (...) {
      return done ? static_cast<ssize_t>(done) : -ENOMEM;
    }
    ssize_t got = offset ? pread64(in, buf.data(), n, *offset) : real::read(in, buf.data(), n);
    if (got < 0) return done ? static_cast<ssize_t>(done) : -errno;
    if (got == 0) break;
    iovec iov{buf.data(), static_cast<size_t>(got)};
    ssize_t sent = sendmsg_locked(c, &iov, 1);
    size_t took = sent > 0 ? static_cast<size_t>(sent) : 0;
    // The file position moves by what the socket took.
    if (offset)
      *offset += static_cast<off64_t>(took);
    else if (took < static_cast<size_t>(got))
      lseek64(in, static_cast<off64_t>(took) - got, SEEK_CUR);
    if (sent < 0) return done ? static_cast<ssize_t>(done) : sent;
    done += took;
    if (took < static_cast<size_t>(got) || static_cast<size_t>(got) < n) break;
  }
  return static_cast<ssize_t>(done);
}

}  // namespace sockshim
