// sockshim dump [PID] [SECTION...] [--json]: the live state of shimmed processes.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/commands.h"
#include "tools/control_client.h"
#include "tools/table.h"

namespace sockshim::tools {
namespace {

constexpr const char kDumpUsage[] =
    "usage: sockshim dump [PID] [SECTION...] [--json]\n"
    "\n"
    "Prints the live state of the process PID, or of every process of this user\n"
    "running under the shim. Sections (default: all):\n"
    "  maps      each map of the policy: type, size, attached programs, and its\n"
    "            entries (key decoded by the key layout, socket cookie, fds,\n"
    "            addresses, state); then the domain's maps: every member's\n"
    "            entries with the processes holding each socket (HOLDERS:\n"
    "            PID:FD,...)\n"
    "  sockets   every tracked socket: its fds, cookie (SO_COOKIE), family, type,\n"
    "            state (a TCP socket's from the kernel), local and remote\n"
    "            address, psock\n"
    "  storage   sk_storage values by socket, decoded by the value layout\n"
    "  stats     psocks: their programs, map links, ingress queue (INGRESS_Q:\n"
    "            bytes waiting for the reader; INGRESS_IN: bytes ever put there)\n"
    "            and byte counters per direction (tx: sk_msg sends, rx: sk_skb\n"
    "            receive) and in total, where\n"
    "              in + pushed - popped = passed + dropped + redirected + queued\n"
    "            (queued: held now, corked or mid-send; RUNS: verdict runs);\n"
    "            then each verdict program's rules with their `if` and `do`,\n"
    "            how many runs each rule decided (HITS) and how (PASSED,\n"
    "            DROPPED, REDIRECTED); rule \"default\": runs where none held\n"
    "--json prints one JSON document: {\"processes\": [{\"process\": {...},\n"
    "\"maps\": [...], \"sockets\": [...], \"storage\": [...], \"psocks\": [...],\n"
    "\"programs\": [...]}]}, keys as documented in docs/cli.md.\n"
    "\n"
    "exit status: 0, 1 when PID has no control socket or answers with an error,\n"
    "2 for a usage error (an unknown option, or an argument that is neither a\n"
    "process id nor a section).\n";

std::string yes_no(bool b) {
  return b ? "yes" : "no";
}

std::string or_dash(const std::string& s) {
  return s.empty() ? "-" : s;
}

std::string fd_list(const nlohmann::json& fds) {
  std::string out;
  for (const auto& fd : fds) out += (out.empty() ? "" : ",") + std::to_string(fd.get<int>());
  return or_dash(out);
}

// field=value,... : the same text `sockshim map` takes.
std::string pairs(const nlohmann::json& obj) {
  if (!obj.is_object()) return obj.dump();
  std::string out;
  for (const auto& [k, v] : obj.items())
    out += (out.empty() ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  return or_dash(out);
}

void print_maps(const nlohmann::json& maps) {
  printf("maps\n");
  if (maps.empty()) printf("  (no policy: no maps)\n");
  for (const auto& m : maps) {
    std::string progs = m.contains("programs") ? pairs(m["programs"]) : "-";
    printf("  %s  %s  max_entries %u  value_size %u  entries %u  programs %s%s\n",
           m.value("name", "").c_str(), m.value("type", "").c_str(), m.value("max_entries", 0u),
           m.value("value_size", 0u), m.value("count", 0u), progs.c_str(),
           m.value("source", "") == "bpf" ? "  (bpf() map)" : "");
    if (m["entries"].empty()) continue;
    Table t({"KEY", "COOKIE", "FD", "LOCAL", "REMOTE", "STATE"});
    for (const auto& e : m["entries"])
      t.add({pairs(e["key"]), std::to_string(e.value("cookie", 0ULL)), fd_list(e["fds"]),
             or_dash(e.value("local", "")), or_dash(e.value("remote", "")),
             or_dash(e.value("state", ""))});
    fputs(t.render("    ").c_str(), stdout);
  }
}

// The domain's maps: every member's entries, with the processes holding each
// socket as PID:FD.
void print_domain_maps(const nlohmann::json& d) {
  if (d.is_null()) return;
  printf("domain maps (%s)\n", d.value("key", "").c_str());
  if (d["maps"].empty()) printf("  (no socket entered a map yet)\n");
  for (const auto& m : d["maps"]) {
    printf("  %s  %s  max_entries %u  entries %u\n", m.value("name", "").c_str(),
           m.value("type", "").c_str(), m.value("max_entries", 0u), m.value("count", 0u));
    if (m["entries"].empty()) continue;
    Table t({"KEY", "COOKIE", "HOLDERS"});
    for (const auto& e : m["entries"]) {
      std::string holders;
      for (const auto& h : e["holders"])
        holders += (holders.empty() ? "" : ",") + std::to_string(h.value("pid", 0)) + ":" +
                   std::to_string(h.value("fd", -1));
      t.add({pairs(e["key"]), std::to_string(e.value("cookie", 0ULL)), or_dash(holders)});
    }
    fputs(t.render("    ").c_str(), stdout);
  }
}

void print_sockets(const nlohmann::json& sockets) {
  printf("sockets\n");
  Table t({"FD", "COOKIE", "FAMILY", "TYPE", "STATE", "LOCAL", "REMOTE", "PSOCK"});
  for (const auto& s : sockets)
    t.add({fd_list(s["fds"]), std::to_string(s.value("cookie", 0ULL)), s.value("family", ""),
           s.value("type", ""), s.value("state", ""), or_dash(s.value("local", "")),
           or_dash(s.value("remote", "")), yes_no(s.value("psock", false))});
  fputs(t.render("  ").c_str(), stdout);
}

void print_storage(const nlohmann::json& storage) {
  printf("storage\n");
  if (storage.empty()) printf("  (no sk_storage maps)\n");
  for (const auto& m : storage) {
    printf("  %s  %zu values\n", m.value("map", "").c_str(), m["values"].size());
    if (m["values"].empty()) continue;
    Table t({"COOKIE", "FD", "LOCAL", "REMOTE", "VALUE"});
    for (const auto& v : m["values"])
      t.add({std::to_string(v.value("cookie", 0ULL)), fd_list(v["fds"]),
             or_dash(v.value("local", "")), or_dash(v.value("remote", "")), pairs(v["value"])});
    fputs(t.render("    ").c_str(), stdout);
  }
}

std::string num(const nlohmann::json& obj, const char* key) {
  return std::to_string(obj.is_object() ? obj.value(key, 0ULL) : 0ULL);
}

void print_psocks(const nlohmann::json& psocks) {
  printf("psocks\n");
  Table t({"COOKIE", "FD", "LOCAL", "REMOTE", "PROGRAMS", "LINKS", "INGRESS_Q", "INGRESS_IN"});
  for (const auto& p : psocks)
    t.add({std::to_string(p.value("cookie", 0ULL)), fd_list(p["fds"]),
           or_dash(p.value("local", "")), or_dash(p.value("remote", "")), pairs(p["programs"]),
           std::to_string(p.value("links", 0)), std::to_string(p.value("ingress_bytes", 0ULL)),
           num(p["stats"], "ingress_in")});
  fputs(t.render("  ").c_str(), stdout);
  if (psocks.empty()) return;
  printf("  bytes: in + pushed - popped = passed + dropped + redirected + queued\n");
  Table c({"COOKIE", "DIR", "IN", "PUSHED", "POPPED", "PASSED", "DROPPED", "REDIRECTED", "QUEUED",
           "RUNS"});
  for (const auto& p : psocks) {
    const nlohmann::json& st = p["stats"];
    // A direction without programs or traffic is left out, and the total with it.
    auto used = [&](const char* dir, const char* prog1, const char* prog2) {
      return p["programs"].contains(prog1) || p["programs"].contains(prog2) ||
             (st.is_object() && st.contains(dir) && st[dir].value("in", 0ULL) > 0);
    };
    bool tx = used("tx", "sk_msg", "sk_msg"), rx = used("rx", "stream_verdict", "skb_verdict");
    std::vector<const char*> dirs;
    if (tx) dirs.push_back("tx");
    if (rx) dirs.push_back("rx");
    if (tx && rx) dirs.push_back("total");
    for (const char* dir : dirs) {
      const nlohmann::json& d = st.is_object() && st.contains(dir) ? st[dir] : nlohmann::json();
      c.add({std::to_string(p.value("cookie", 0ULL)), dir, num(d, "in"), num(d, "pushed"),
             num(d, "popped"), num(d, "passed"), num(d, "dropped"), num(d, "redirected"),
             num(d, "queued"), d.is_object() && d.contains("runs") ? num(d, "runs") : "-"});
    }
  }
  fputs(c.render("  ").c_str(), stdout);
}

void print_programs(const nlohmann::json& programs) {
  printf("programs (per rule: runs in which the rule held, and what they decided)\n");
  if (programs.empty()) {
    printf("  (no verdict programs)\n");
    return;
  }
  Table t({"PROGRAM", "TYPE", "RULE", "HITS", "PASSED", "DROPPED", "REDIRECTED", "IF", "DO"});
  for (const auto& p : programs)
    for (const auto& r : p["rules"])
      t.add({p.value("name", ""), p.value("type", ""),
             r["rule"].is_string() ? r["rule"].get<std::string>() : r["rule"].dump(),
             num(r, "hits"), num(r, "passed"), num(r, "dropped"), num(r, "redirected"),
             one_line(r.value("if", ""), 60), one_line(r.value("do", ""), 60)});
  fputs(t.render("  ").c_str(), stdout);
  for (const auto& p : programs)
    if (p.value("bytecode", false))
      printf("  %s: bytecode, %s faults\n", p.value("name", "").c_str(), num(p, "faults").c_str());
}

void print_text(const nlohmann::json& dump) {
  const nlohmann::json& p = dump["process"];
  printf("== pid %d: %s (policy: %s)\n", p.value("pid", 0),
         one_line(p.value("command", ""), 72).c_str(),
         p["policy"].is_string() ? p["policy"].get<std::string>().c_str() : "none");
  if (dump.contains("maps")) print_maps(dump["maps"]);
  if (dump.contains("domain_maps")) print_domain_maps(dump["domain_maps"]);
  if (dump.contains("sockets")) print_sockets(dump["sockets"]);
  if (dump.contains("storage")) print_storage(dump["storage"]);
  if (dump.contains("psocks")) print_psocks(dump["psocks"]);
  if (dump.contains("programs")) print_programs(dump["programs"]);
}

bool is_section(const std::string& arg) {
  return arg == "maps" || arg == "sockets" || arg == "storage" || arg == "stats";
}

}  // namespace

int dump_main(int argc, char** argv) {
  bool as_json = false;
  int pid = 0;
  nlohmann::json sections = nlohmann::json::array();
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--json") {
      as_json = true;
    } else if (arg == "-h" || arg == "--help") {
      fputs(kDumpUsage, stdout);
      return 0;
    } else if (!arg.empty() && arg.find_first_not_of("0123456789") == std::string::npos &&
               pid == 0 && sections.empty()) {
      pid = std::atoi(arg.c_str());
    } else if (is_section(arg)) {
      sections.push_back(arg);
    } else if (!arg.empty() && arg[0] != '-') {
      // Said here once, rather than as an EINVAL from every process.
      fprintf(stderr,
              "sockshim dump: '%s' is not a process id or a section (maps|sockets|storage|stats)"
              "\n%s",
              argv[i], kDumpUsage);
      return kExitUsage;
    } else {
      fprintf(stderr, "sockshim dump: unknown argument '%s'\n%s", argv[i], kDumpUsage);
      return kExitUsage;
    }
  }
  nlohmann::json args = nlohmann::json::object();
  if (!sections.empty()) args["sections"] = sections;

  std::vector<Peer> peers;
  try {
    peers = pid ? std::vector<Peer>{find_peer(pid)} : list_peers();
  } catch (const std::exception& e) {
    fprintf(stderr, "sockshim dump: %s\n", e.what());
    return 1;
  }
  nlohmann::json all = nlohmann::json::array();
  int status = 0;
  for (const Peer& peer : peers) {
    try {
      nlohmann::json dump = call(peer, "dump", args);
      if (as_json)
        all.push_back(dump);
      else
        print_text(dump);
    } catch (const std::exception& e) {
      fprintf(stderr, "sockshim dump: pid %d: %s\n", peer.pid, e.what());
      status = 1;
    }
  }
  if (as_json) printf("%s\n", nlohmann::json{{"processes", all}}.dump(2).c_str());
  return status;
}

}  // namespace sockshim::tools
