// Receive-path conformance (issue #6): each row's traffic runs under the
// kernel's sockmap (checked against what the row expects of the kernel) and
// under the shim; every reader must get the same bytes and the same end, and
// every probe (a recv or SO_ERROR at a set moment) the same result.
// Usage: recv_conformance recv_progs.bpf.o [--kernel-only] [name filter]
// Exit 0 all passed, 1 a row failed or the programs did not load, 77 bpf()
// refused (skip).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include "recv_backends.h"

namespace recv_conf {
namespace {

using std::chrono::steady_clock;

Step write(std::string b) {
  return {Step::write, std::move(b)};
}
Step sleep_ms(int ms) {
  return {Step::sleep, {}, ms};
}
const Step kInsert{Step::insert};
const Step kRecv{Step::recv};                   // one recv(MSG_DONTWAIT) now
const Step kRecvWait{Step::recv, {}, 0, true};  // the first result that is not EAGAIN
const Step kSoError{Step::so_error};
const Step kSoErrorWait{Step::so_error, {}, 0, true};  // the first that is not 0

std::string recv_got(const std::string& b) {
  return "recv p1: " + show(b);
}
const std::string kEagain = "recv p1: EAGAIN";

std::string concat(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += x;
  return s;
}

std::vector<Row> rows() {
  const std::vector<std::string> bulk = {"hello", pattern(1000, 1), pattern(100000, 2), "bye"};
  const std::vector<std::string> frames = {frame("one"),      frame("two DROP"),   frame("three"),
                                           frame("DROPfour"), frame("five, DROP"), frame("six")};
  const std::string early = "early", late = "late";
  // Pre-insertion bytes: written before p1 enters the map; the first read
  // right after insertion, then a second.
  auto pre = [&](Step second) {
    return std::vector<Step>{write(early), sleep_ms(50), kInsert, kRecv, sleep_ms(100), second};
  };
  std::vector<Row> r;

  Row fwd{"1 forward: parser whole + stream verdict, redirect egress to c2"};
  fwd.progs = {Parser::whole, 0, 0, VerdictType::stream, Action::redirect_egress};
  fwd.writes = bulk;
  fwd.expect_p2 = concat(bulk);
  fwd.note = "test_sockmap's topology: c1 -> p1 -> out of c2 -> p2";
  r.push_back(fwd);

  Row ing{"2 ingress redirect: parser whole + stream verdict, redirect to p2 BPF_F_INGRESS"};
  ing.progs = {Parser::whole, 0, 0, VerdictType::stream, Action::redirect_ingress};
  ing.writes = bulk;
  ing.expect_p2 = concat(bulk);
  r.push_back(ing);

  Row drop{"3 drop by content: length_prefix frames, verdict drops those containing DROP"};
  drop.progs = {Parser::length_prefix, 0, 0, VerdictType::stream, Action::pass, "DROP"};
  drop.writes = frames;
  drop.pace_ms = 10;  // one frame per write and per skb (§7: the kernel verdict sees the skb)
  drop.expect_p1 = frames[0] + frames[2] + frames[5];
  r.push_back(drop);

  Row many{"3b length_prefix frames + pass: 100 frames in one write arrive intact"};
  many.progs = {Parser::length_prefix, 0, 0, VerdictType::stream, Action::pass};
  // Frames of one size: the kernel's parser, like its verdict, reads the
  // header at the start of the skb, not of the frame (4.1), so only equal
  // frames are cut the same way by both.
  std::string hundred;
  for (int i = 0; i < 100; ++i) hundred += frame("message " + std::to_string(100 + i));
  many.writes = {hundred};
  many.expect_p1 = hundred;
  many.note = "sockmap_strp 'multiple packets'";
  r.push_back(many);

  Row part{"3c length_prefix frame + pass: a split header and body give nothing until whole"};
  part.progs = many.progs;
  const std::string whole = frame("hello world");
  part.script = {kInsert,  write(whole.substr(0, 2)), sleep_ms(50),
                 kRecv,    write(whole.substr(2, 5)), sleep_ms(50),
                 kRecv,    write(whole.substr(7)),    sleep_ms(100),
                 kRecvWait};
  part.expect_probes = {kEagain, kEagain, recv_got(whole)};
  part.note = "sockmap_strp 'partial read'";
  r.push_back(part);

  Row f10{"4a parser fixed 10 + pass: one 20-byte write -> 20 bytes"};
  f10.progs = {Parser::fixed, 10, 0, VerdictType::stream, Action::pass};
  f10.writes = {pattern(20, 3)};
  f10.expect_p1 = f10.writes[0];
  f10.note = "test_sockmap 'ingress parser2'";
  r.push_back(f10);

  Row f512{"4b parser fixed 512 + pass: two 256-byte writes -> one 512-byte message"};
  f512.progs = {Parser::fixed, 512, 0, VerdictType::stream, Action::pass};
  f512.writes = {pattern(256, 4), pattern(256, 5)};
  f512.pace_ms = 10;
  f512.expect_p1 = concat(f512.writes);
  f512.note = "test_sockmap 'ingress parser'";
  r.push_back(f512);

  Row f4{"4c parser fixed 4 + pass: a 10-byte write delivers 8, 2 wait for the next 2"};
  f4.progs = {Parser::fixed, 4, 0, VerdictType::stream, Action::pass};
  f4.script = {kInsert, write("0123456789"), sleep_ms(100), kRecvWait,
               kRecv,   write("ab"),         sleep_ms(100), kRecvWait};
  f4.expect_probes = {recv_got("01234567"), kEagain, recv_got("89ab")};
  f4.note = "KERNEL-SEMANTICS 4.1 splitting";
  r.push_back(f4);

  Row f1{"4d parser fixed 1 + pass: every byte a message"};
  f1.progs = {Parser::fixed, 1, 0, VerdictType::stream, Action::pass};
  f1.writes = {"abcdef", "gh"};
  f1.pace_ms = 10;
  f1.expect_p1 = "abcdefgh";
  r.push_back(f1);

  Row f3{"4e parser fixed 3 + redirect egress: \"abc\\0\" -> 3 bytes at p2, 1 held"};
  f3.progs = {Parser::fixed, 3, 0, VerdictType::stream, Action::redirect_egress};
  f3.writes = {std::string("abc\0", 4)};
  f3.expect_p2 = "abc";
  f3.note = "sockmap_listen 'skb_redir_partial'";
  r.push_back(f3);

  Row vp{"5a skb verdict alone (sk_skb/verdict): pass"};
  vp.progs = {Parser::none, 0, 0, VerdictType::skb, Action::pass};
  vp.writes = {"abc", "defg"};
  vp.pace_ms = 10;
  vp.expect_p1 = "abcdefg";
  r.push_back(vp);

  Row ve = vp;
  ve.name = "5b skb verdict alone (sk_skb/verdict): redirect egress to c2";
  ve.progs.action = Action::redirect_egress;
  ve.expect_p1.clear();
  ve.expect_p2 = "abcdefg";
  r.push_back(ve);

  Row vi = ve;
  vi.name = "5c stream verdict alone (no parser): redirect to p2 BPF_F_INGRESS";
  vi.progs.verdict = VerdictType::stream;
  vi.progs.action = Action::redirect_ingress;
  r.push_back(vi);

  Row fin = vi;
  fin.name = "5e stream verdict alone, redirect to p2 BPF_F_INGRESS: c1 shuts down";
  fin.writes = {"abc"};
  fin.pace_ms = 0;
  fin.eof_early = true;
  fin.expect_p2 = "abc";
  // Verdict mode hands c1's FIN to the verdict as an empty skb, redirected
  // into p2's queue; p2's recvmsg (no verdict of its own, so no
  // is_next_msg_fin check) copies nothing from it and returns EFAULT.
  fin.expect_p2_end = "error EFAULT";
  fin.shim_p2_end = "EOF";
  fin.note = "kernel: the source's FIN reaches the target's reader as EFAULT; shim: EOF";
  r.push_back(fin);

  Row vd = ve;
  vd.name = "5d stream verdict alone (no parser): drop";
  vd.progs.verdict = VerdictType::stream;
  vd.progs.action = Action::drop;
  vd.expect_p2.clear();
  r.push_back(vd);

  Row pp{"6a pre-insertion bytes, parser + stream verdict pass"};
  pp.progs = {Parser::whole, 0, 0, VerdictType::stream, Action::pass};
  pp.script = pre(kRecvWait);
  pp.writes = {late};
  // The first read hands the old bytes to strparser, whose work waits for the
  // socket lock the read holds: EAGAIN, then the bytes (sockmap_strp "pass").
  pp.expect_probes = {kEagain, recv_got(early)};
  // The shim does not reproduce that quirk (KERNEL-SEMANTICS §7): the first
  // read gets the bytes, as if the socket had been inserted during the
  // handshake; the waiting second probe then finds nothing.
  pp.shim_probes = {recv_got(early), kEagain};
  pp.expect_p1 = late;
  pp.note = "kernel: EAGAIN, then the bytes; shim: the bytes at the first read";
  r.push_back(pp);

  Row pd = pp;
  pd.name = "6b pre-insertion bytes, parser + stream verdict drop";
  pd.progs.action = Action::drop;
  pd.script = pre(kRecv);
  pd.expect_probes = {kEagain, kEagain};
  pd.shim_probes.clear();
  pd.expect_p1.clear();
  pd.note.clear();
  r.push_back(pd);

  Row pv = pp;
  pv.name = "6c pre-insertion bytes, skb verdict pass";
  pv.progs = {Parser::none, 0, 0, VerdictType::skb, Action::pass};
  pv.script = pre(kRecv);
  // Verdict mode reads the old bytes inside that first read: no EAGAIN.
  pv.expect_probes = {recv_got(early), kEagain};
  pv.shim_probes.clear();
  pv.note.clear();
  r.push_back(pv);

  Row pr = pv;
  pr.name = "6d pre-insertion bytes, skb verdict redirect egress to c2";
  pr.progs.action = Action::redirect_egress;
  pr.expect_probes = {kEagain, kEagain};
  pr.expect_p1.clear();
  // p1 enters rx before c2 enters redir: the kernel runs the old bytes at the
  // first read, when the target is in place, so none is lost.
  pr.expect_p2 = early + late;
  r.push_back(pr);

  Row err{"7 parser error: a length prefix over max -> recv EAGAIN, SO_ERROR EMSGSIZE"};
  err.progs = {Parser::length_prefix, 0, 64, VerdictType::stream, Action::pass};
  err.script = {kInsert,
                write(frame("ok")),
                sleep_ms(100),
                kRecvWait,
                write(frame(pattern(1000, 6)).substr(0, 8)),
                sleep_ms(100),
                kRecv,
                kSoErrorWait,
                kRecv,
                kSoError};
  err.expect_probes = {recv_got(frame("ok")), kEagain, "SO_ERROR p1: EMSGSIZE", kEagain,
                       "SO_ERROR p1: 0"};
  // The bytes after the error stay in the receive queue, so every later recv,
  // even after c1's FIN, is EAGAIN: p1 never sees EOF.
  err.expect_p1_end = "open";
  r.push_back(err);

  Row eof{"8a EOF right after passed bytes: parser whole + stream verdict pass"};
  eof.progs = {Parser::whole, 0, 0, VerdictType::stream, Action::pass};
  eof.writes = {"abc"};
  eof.eof_early = true;
  eof.expect_p1 = "abc";
  r.push_back(eof);

  Row eofv = eof;
  eofv.name = "8b EOF right after passed bytes: skb verdict pass";
  eofv.progs = {Parser::none, 0, 0, VerdictType::skb, Action::pass};
  r.push_back(eofv);
  return r;
}

bool same_reader(const Reader& a, const Reader& b) {
  return a.bytes == b.bytes && a.end == b.end;
}

bool same(const Outcome& a, const Outcome& b) {
  return a.probes == b.probes && a.writes == b.writes && same_reader(a.p1, b.p1) &&
         same_reader(a.p2, b.p2) && same_reader(a.c1, b.c1) && same_reader(a.c2, b.c2);
}

// The kernel outcome the row describes: its probes and bytes, p1's end, every
// other reader empty at EOF, every write whole.
bool as_expected(const Row& row, const Outcome& o) {
  Outcome want;
  want.probes = row.expect_probes;
  want.p1 = {row.expect_p1, row.expect_p1_end};
  want.p2 = {row.expect_p2, row.expect_p2_end};
  want.c1 = want.c2 = {"", "EOF"};
  for (const Step& s : row.script)
    if (s.kind == Step::write) want.writes.push_back(static_cast<ssize_t>(s.bytes.size()));
  for (const std::string& w : row.writes) want.writes.push_back(static_cast<ssize_t>(w.size()));
  return same(want, o);
}

// A row that hangs fails the suite instead of stalling it. Every wait in a
// row is bounded; a failing row may take ~20 s per side, a hang longer.
std::atomic<steady_clock::rep> g_deadline{0};
std::atomic<const char*> g_row{""};

void watchdog() {
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto d = g_deadline.load();
    if (d && steady_clock::now().time_since_epoch().count() > d) {
      fprintf(stdout, "FAIL %s: hung (no result within 60 s)\n", g_row.load());
      fflush(stdout);
      _exit(1);
    }
  }
}

void arm(const Row& row) {
  g_row = row.name.c_str();
  g_deadline = (steady_clock::now() + std::chrono::seconds(60)).time_since_epoch().count();
}

}  // namespace
}  // namespace recv_conf

int main(int argc, char** argv) {
  using namespace recv_conf;
  if (argc < 2) {
    fprintf(stderr, "usage: recv_conformance recv_progs.bpf.o [--kernel-only] [filter]\n");
    return 2;
  }
  bool kernel_only = false;
  const char* filter = nullptr;
  for (int i = 2; i < argc; ++i) {
    if (strcmp(argv[i], "--kernel-only") == 0)
      kernel_only = true;
    else
      filter = argv[i];
  }
  KernelSide kernel;
  std::string why;
  const conformance::KernelOpen opened = kernel.open(argv[1], &why);
  if (opened != conformance::KernelOpen::ok) return conformance::exit_without_kernel(opened, why);
  std::thread(watchdog).detach();

  int pass = 0, fail = 0;
  for (const Row& row : rows()) {
    if (filter && row.name.find(filter) == std::string::npos) continue;
    arm(row);
    Outcome k = kernel.run(row);
    const bool kernel_ok = as_expected(row, k);
    printf("%s %s%s\n  kernel%s:\n%s", kernel_ok ? "----" : "FAIL", row.name.c_str(),
           row.note.empty() ? "" : (" (" + row.note + ")").c_str(),
           kernel_ok ? "" : " (not what the row expects of the kernel)", describe(k).c_str());
    bool ok = kernel_ok;
    if (!kernel_only) {
      // The kernel's outcome, with the documented differences.
      Outcome want = k;
      if (!row.shim_p2_end.empty()) want.p2.end = row.shim_p2_end;
      if (!row.shim_probes.empty()) want.probes = row.shim_probes;
      const bool differs = !row.shim_p2_end.empty() || !row.shim_probes.empty();
      Outcome s;
      std::string errors;
      if (!shim_run(row, &s, &errors)) {
        printf("  shim: the policy did not load:\n%s", errors.c_str());
        ok = false;
      } else if (same(want, s)) {
        printf(differs ? "  shim: same but what is documented as different\n" : "  shim: same\n");
      } else {
        printf("  shim differs:\n%s", describe(s).c_str());
        ok = false;
      }
    }
    printf("%s %s\n", ok ? "PASS" : "FAIL", row.name.c_str());
    fflush(stdout);
    (ok ? pass : fail)++;
  }
  g_deadline = 0;
  printf("%d passed, %d failed%s\n", pass, fail, kernel_only ? " (kernel side only)" : "");
  return fail ? 1 : 0;
}
