// The receive-path conformance rows (KERNEL-SEMANTICS.md §4, §6): what a row
// attaches, the traffic it sends, and what every reader got. A row runs once
// under the kernel's sockmap and once under the shim; the outcomes must be equal.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace recv_conf {

enum class Parser { none, whole, fixed, length_prefix };
enum class VerdictType { stream, skb };  // BPF_SK_SKB_STREAM_VERDICT / BPF_SK_SKB_VERDICT
enum class Action { pass, drop, redirect_egress, redirect_ingress };

// What the programs on map "rx" do. The verdict always exists; the parser only
// when not none.
struct Progs {
  Parser parser = Parser::whole;
  uint32_t fixed = 0;  // Parser::fixed: the length returned
  uint32_t max = 0;    // Parser::length_prefix: longer frames are a parser error
  VerdictType verdict = VerdictType::stream;
  Action action = Action::pass;
  std::string drop_marker;  // 4 bytes, or empty: frames containing it are dropped
};

// A step run before the readers start, on c1 (write) or p1 (the rest).
struct Step {
  enum Kind { write, insert, sleep, recv, so_error } kind;
  std::string bytes;  // write
  int ms = 0;         // sleep
  bool wait = false;  // recv: retry EAGAIN; so_error: retry 0 (bounded)
};

struct Row {
  std::string name;
  Progs progs;
  // Run in order before the readers start; p1 enters the maps first unless
  // the script has an insert step.
  std::vector<Step> script;
  std::vector<std::string> writes;  // c1's writes while the readers run
  int pace_ms = 0;                  // pause after each write (one skb per write)
  bool eof_early = false;           // c1 shuts down right after its last write
  std::string note;                 // printed with the row
  // What the kernel gives (checked, so a row that stops meaning what it says
  // is noticed): probe results, the bytes and ends at p1 and p2.
  std::vector<std::string> expect_probes;
  std::string expect_p1, expect_p2;
  std::string expect_p1_end = "EOF", expect_p2_end = "EOF";
  // Deliberate differences (docs/semantics.md, "The receive path"): p2's end, or the
  // probe results, under the shim where they are not the kernel's;
  // everything else must still match.
  std::string shim_p2_end;
  std::vector<std::string> shim_probes;
};

// What one reader got: every byte in order, and how reading ended: "EOF",
// "error <errno name>", or "open" (neither EOF nor error in time).
struct Reader {
  std::string bytes;
  std::string end;
};

struct Outcome {
  std::vector<std::string> probes;  // the script's recv/so_error results, in order
  std::vector<ssize_t> writes;      // each write's result (-errno on failure)
  Reader p1, p2, c1, c2;
};

// Puts p1 into rx[0], then (when target >= 0) target into redir[0], in that
// order. 0 or -errno.
using Insert = std::function<int(int p1, int target)>;

// Runs a row's traffic on fresh loopback connections c1<->p1 and c2<->p2:
// the script, then the writes with p2, c1 and c2 draining; once p2 has the
// row's expected bytes and all is quiet, p1 drains too (until it has its
// expected bytes and all is quiet); then shutdown(SHUT_WR) of c2 and p2, then
// of c1 and p1, and each reader's end.
Outcome run_traffic(const Row& row, const Insert& insert);

std::string show(const std::string& bytes);  // printable, long runs elided
std::string describe(const Outcome& o);      // one line per probe and reader

// A length-prefixed frame: 4-byte big-endian payload length, then the payload.
std::string frame(const std::string& payload);
std::string pattern(size_t n, unsigned seed);  // n deterministic bytes

}  // namespace recv_conf
