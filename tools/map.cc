// sockshim map lookup|update|delete PID MAP KEY [FD] [--value V] [--flags F]:
// user-space map operations on a live process, with the kernel's errno.
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "tools/commands.h"
#include "tools/control_client.h"

namespace sockshim::tools {
namespace {

constexpr const char kMapUsage[] =
    "usage: sockshim map lookup PID MAP KEY [--json]\n"
    "       sockshim map update PID MAP KEY FD [--flags F] [--json]\n"
    "       sockshim map update PID MAP FD --value FIELD=N[,FIELD=N...] [--flags F]\n"
    "       sockshim map delete PID MAP KEY [--json]\n"
    "\n"
    "The bpf() map commands on the maps of a live process, with the kernel's\n"
    "semantics and errno (BPF_MAP_UPDATE_ELEM, _LOOKUP_ELEM, _DELETE_ELEM).\n"
    "KEY is an index for a sockmap; for a sockhash, every field of the map's key\n"
    "layout as FIELD=VALUE separated by commas (local_ip4=127.0.0.1,local_port=6379,\n"
    "...), as `sockshim dump` prints keys; for sk_storage, the socket's fd.\n"
    "FD is a socket fd in the process PID (sockmap/sockhash update).\n"
    "  --flags F   BPF_ANY (default), BPF_NOEXIST or BPF_EXIST\n"
    "  --value V   the sk_storage value, FIELD=N for fields of its layout (others 0)\n"
    "  --json      print the result as JSON\n"
    "lookup prints the socket's cookie (SO_COOKIE) and its fds and addresses, or\n"
    "the sk_storage value. Errors are printed as the kernel's names, e.g.\n"
    "`sockshim map: EEXIST: key already present (BPF_NOEXIST)`; exit status 1.\n"
    "A usage error (a wrong count of arguments, a PID or FD that is not a\n"
    "number) is named and exits 2.\n";

}  // namespace

int map_main(int argc, char** argv) {
  std::vector<std::string> pos;
  nlohmann::json args = nlohmann::json::object();
  bool as_json = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "-h" || a == "--help") {
      fputs(kMapUsage, stdout);
      return 0;
    } else if (a == "--json") {
      as_json = true;
    } else if ((a == "--flags" || a == "--value") && i + 1 < argc) {
      args[a.substr(2)] = argv[++i];
    } else if (a.size() > 1 && a[0] == '-') {
      fprintf(stderr, "sockshim map: unknown option '%s'\n%s", a.c_str(), kMapUsage);
      return kExitUsage;
    } else {
      pos.push_back(a);
    }
  }
  bool storage_update = args.contains("value");
  size_t want = pos.empty() ? 0 : pos[0] == "update" && !storage_update ? 5 : 4;
  if (pos.empty() || (pos[0] != "lookup" && pos[0] != "update" && pos[0] != "delete") ||
      pos.size() != want) {
    fprintf(stderr, "sockshim map: expected lookup|update|delete PID MAP KEY%s\n%s",
            !pos.empty() && pos[0] == "update" ? " FD" : "", kMapUsage);
    return kExitUsage;
  }
  if (pos[1].empty() || pos[1].find_first_not_of("0123456789") != std::string::npos) {
    fprintf(stderr, "sockshim map: PID must be a process id, not '%s'\n", pos[1].c_str());
    return kExitUsage;
  }
  args["op"] = pos[0];
  args["map"] = pos[2];
  args["key"] = pos[3];
  if (want == 5) {
    if (pos[4].find_first_not_of("0123456789") != std::string::npos) {
      fprintf(stderr, "sockshim map: FD must be a number, not '%s'\n", pos[4].c_str());
      return kExitUsage;
    }
    args["fd"] = std::atoi(pos[4].c_str());
  }
  try {
    nlohmann::json r = call(find_peer(std::atoi(pos[1].c_str())), "map", args);
    if (as_json) {
      printf("%s\n", r.dump(2).c_str());
    } else if (r.contains("cookie")) {
      const auto& s = r["socket"];
      std::string fds;
      for (const auto& fd : s["fds"])
        fds += (fds.empty() ? "" : ",") + std::to_string(fd.get<int>());
      printf("cookie %llu  fd %s  %s -> %s  %s\n", r["cookie"].get<unsigned long long>(),
             fds.empty() ? "-" : fds.c_str(), s.value("local", "-").c_str(),
             s.value("remote", "-").c_str(), s.value("state", "-").c_str());
    } else if (r.contains("value")) {
      std::string out;
      for (const auto& [k, v] : r["value"].items())
        out +=
            (out.empty() ? "" : ",") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
      printf("%s\n", out.c_str());
    } else {
      printf("ok\n");
    }
    return 0;
  } catch (const std::exception& e) {
    fprintf(stderr, "sockshim map: %s\n", e.what());
    return 1;
  }
}

}  // namespace sockshim::tools
