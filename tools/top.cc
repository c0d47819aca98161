// sockshim top [PID] [--once] [--interval MS]: a live view of the psocks of
// shimmed processes, refreshed every second: per socket, bytes per second in,
// passed, dropped, redirected, the bytes queued (held) and the ingress queue depth. q quits.
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/commands.h"
#include "tools/control_client.h"
#include "tools/table.h"

namespace sockshim::tools {
namespace {

constexpr const char kTopUsage[] =
    "usage: sockshim top [PID] [--interval MS] [--once]\n"
    "\n"
    "A live view of the psocks of the process PID (default: every process of this\n"
    "user under the shim), refreshed every second: per socket, the bytes per\n"
    "second (both directions, sk_msg and sk_skb) that came in, were passed,\n"
    "dropped and redirected since the previous refresh (IN/s .. REDIR/s, in B, K,\n"
    "M, G: powers of 1024), the bytes its programs hold now (QUEUED: corked, or\n"
    "mid-send), the bytes waiting in its ingress queue for the reader (INGRESS_Q),\n"
    "and the byte totals since the psock was made (IN, PASSED, DROPPED,\n"
    "REDIRECTED). Sorted by IN/s, then IN, busiest first. q quits.\n"
    "  --interval MS   refresh period (default 1000)\n"
    "  --once          print one screen, without clearing the terminal, and exit\n";

struct Sample {
  uint64_t in = 0, passed = 0, dropped = 0, redirected = 0;
};

struct Row {
  int pid;
  nlohmann::json psock;
  Sample now, rate;
};

// A byte count in one word: 812B, 12.4K, 3.0M (powers of 1024).
std::string human(uint64_t bytes) {
  const char* unit[] = {"B", "K", "M", "G", "T"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  snprintf(buf, sizeof buf, u ? "%.1f%s" : "%.0f%s", v, unit[u]);
  return buf;
}

Sample sample_of(const nlohmann::json& psock) {
  const nlohmann::json none = nlohmann::json::object();
  const nlohmann::json& st = psock.contains("stats") ? psock["stats"] : none;
  const nlohmann::json& t = st.contains("total") ? st["total"] : none;
  return {t.value("in", 0ULL), t.value("passed", 0ULL), t.value("dropped", 0ULL),
          t.value("redirected", 0ULL)};
}

uint64_t held_of(const nlohmann::json& psock) {
  if (!psock.contains("stats") || !psock["stats"].contains("total")) return 0;
  return psock["stats"]["total"].value("queued", 0ULL);
}

class RawTerminal {
 public:
  RawTerminal() {
    active_ = isatty(0) && tcgetattr(0, &saved_) == 0;
    if (!active_) return;
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    tcsetattr(0, TCSANOW, &raw);
  }
  ~RawTerminal() {
    if (active_) tcsetattr(0, TCSANOW, &saved_);
  }

 private:
  bool active_ = false;
  termios saved_{};
};

// Waits up to ms for a key; true when it was q (or standard input closed).
bool quit_within(int ms) {
  pollfd p{0, POLLIN, 0};
  if (poll(&p, 1, ms) <= 0) return false;
  char c = 0;
  ssize_t n = read(0, &c, 1);
  return n <= 0 || c == 'q' || c == 'Q';
}

}  // namespace

int top_main(int argc, char** argv) {
  int pid = 0, interval = 1000;
  bool once = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      fputs(kTopUsage, stdout);
      return 0;
    } else if (a == "--once") {
      once = true;
    } else if (a == "--interval" && i + 1 < argc && atoi(argv[i + 1]) > 0) {
      interval = atoi(argv[++i]);
    } else if (!a.empty() && a.find_first_not_of("0123456789") == std::string::npos && !pid) {
      pid = atoi(a.c_str());
    } else {
      fprintf(stderr, "sockshim top: unknown argument '%s'\n%s", a.c_str(), kTopUsage);
      return kExitUsage;
    }
  }
  RawTerminal term;
  std::map<std::pair<int, uint64_t>, Sample> previous;
  for (bool first = true;; first = false) {
    std::vector<Peer> peers;
    try {
      peers = pid ? std::vector<Peer>{find_peer(pid)} : list_peers();
    } catch (const std::exception& e) {
      fprintf(stderr, "sockshim top: %s\n", e.what());
      return 1;
    }
    std::vector<Row> rows;
    std::map<std::pair<int, uint64_t>, Sample> current;
    for (const Peer& peer : peers) {
      nlohmann::json dump;
      try {
        dump = call(peer, "dump", {{"sections", {"stats"}}});
      } catch (const std::exception&) {
        continue;  // exited meanwhile
      }
      for (const auto& p : dump["psocks"]) {
        Row r{peer.pid, p, sample_of(p), {}};
        auto key = std::make_pair(peer.pid, p.value("cookie", 0ULL));
        auto it = previous.find(key);
        if (it != previous.end() && !first) {
          double scale = 1000.0 / interval;
          auto per_s = [&](uint64_t now, uint64_t before) {
            return static_cast<uint64_t>(static_cast<double>(now >= before ? now - before : 0) *
                                         scale);
          };
          r.rate = {per_s(r.now.in, it->second.in), per_s(r.now.passed, it->second.passed),
                    per_s(r.now.dropped, it->second.dropped),
                    per_s(r.now.redirected, it->second.redirected)};
        }
        current[key] = r.now;
        rows.push_back(std::move(r));
      }
    }
    previous = std::move(current);
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      return a.rate.in != b.rate.in ? a.rate.in > b.rate.in : a.now.in > b.now.in;
    });

    Table t({"PID", "COOKIE", "FD", "LOCAL", "REMOTE", "IN/s", "PASS/s", "DROP/s", "REDIR/s",
             "QUEUED", "INGRESS_Q", "IN", "PASSED", "DROPPED", "REDIRECTED"});
    for (const Row& r : rows) {
      std::string fds;
      for (const auto& fd : r.psock["fds"]) fds += (fds.empty() ? "" : ",") + fd.dump();
      t.add({std::to_string(r.pid), std::to_string(r.psock.value("cookie", 0ULL)),
             fds.empty() ? "-" : fds, r.psock.value("local", "-"), r.psock.value("remote", "-"),
             human(r.rate.in), human(r.rate.passed), human(r.rate.dropped),
             human(r.rate.redirected), std::to_string(held_of(r.psock)),
             std::to_string(r.psock.value("ingress_bytes", 0ULL)), std::to_string(r.now.in),
             std::to_string(r.now.passed), std::to_string(r.now.dropped),
             std::to_string(r.now.redirected)});
    }
    if (!once) fputs("\033[H\033[2J", stdout);
    printf("sockshim top: %zu processes, %zu psocks, every %d ms%s\n\n", peers.size(), rows.size(),
           interval, once ? "" : "  (q quits)");
    fputs(t.render().c_str(), stdout);
    fflush(stdout);
    if (once || quit_within(interval)) return 0;
  }
}

}  // namespace sockshim::tools
