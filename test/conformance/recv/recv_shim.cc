// The shim side: the row's programs as a policy, loaded in this process (the
// suite holds the shim's hook objects, so its own socket calls are hooked) and
// unloaded after the row; sockets enter the maps through the C API.
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/maps/loaded_policy.h"
#include "recv_backends.h"
#include "shim/sockshim.h"

namespace recv_conf {

std::string policy_json(const Progs& p) {
  std::string frame;
  switch (p.parser) {
    case Parser::none:
    case Parser::whole:
      frame = "\"whole\"";
      break;
    case Parser::fixed:
      frame = "{\"fixed\": " + std::to_string(p.fixed) + "}";
      break;
    case Parser::length_prefix:
      frame = R"({"length_prefix": {"offset": 0, "size": 4, "endian": "big", "adjust": 4})" +
              (p.max ? ", \"max\": " + std::to_string(p.max) : std::string()) + "}";
      break;
  }
  std::string action;
  switch (p.action) {
    case Action::pass:
      action = "\"pass\"";
      break;
    case Action::drop:
      action = "\"drop\"";
      break;
    case Action::redirect_egress:
      action = R"({"redirect": {"map": "redir", "key": 0}})";
      break;
    case Action::redirect_ingress:
      action = R"({"redirect": {"map": "redir", "key": 0, "flags": ["BPF_F_INGRESS"]}})";
      break;
  }
  std::string rules;
  if (!p.drop_marker.empty())
    rules = R"({"if": {"data": {"contains": ")" + p.drop_marker + R"("}}, "do": ["drop"]}, )";
  rules += "{\"do\": [" + action + "]}";
  const bool stream = p.verdict == VerdictType::stream;
  std::string programs = std::string(R"("verdict": {"type": ")") +
                         (stream ? "sk_skb/stream_verdict" : "sk_skb/verdict") +
                         R"(", "rules": [)" + rules + "]}";
  std::string attach = std::string(R"({"program": "verdict", "map": "rx", "attach_type": ")") +
                       (stream ? "BPF_SK_SKB_STREAM_VERDICT" : "BPF_SK_SKB_VERDICT") + "\"}";
  if (p.parser != Parser::none) {
    programs += R"(, "parser": {"type": "sk_skb/stream_parser", "frame": )" + frame + "}";
    attach += R"(, {"program": "parser", "map": "rx", "attach_type": "BPF_SK_SKB_STREAM_PARSER"})";
  }
  return R"({"version": 1, "maps": {"rx": {"type": "sockmap", "max_entries": 2},
    "redir": {"type": "sockmap", "max_entries": 2}},
  "programs": {)" +
         programs + "},\n  \"attach\": [" + attach + "]}\n";
}

bool shim_run(const Row& row, Outcome* out, std::string* errors) {
  char path[] = "/tmp/sockshim-recv-conf-policy-XXXXXX";
  int fd = mkstemp(path);
  const std::string json = policy_json(row.progs);
  bool ok = fd >= 0 && write(fd, json.data(), json.size()) == static_cast<ssize_t>(json.size());
  if (fd >= 0) close(fd);
  std::vector<std::string> errs;
  ok = ok && sockshim::load_policy(path, &errs);
  unlink(path);
  for (const std::string& e : errs) *errors += e + "\n";
  if (!ok) return false;
  *out = run_traffic(row, [](int p1, int target) {
    uint32_t zero = 0;
    uint64_t v = static_cast<uint64_t>(p1);
    if (int r = sockshim_map_update_elem("rx", &zero, &v, 0)) return r;
    v = static_cast<uint64_t>(target);
    return target >= 0 ? sockshim_map_update_elem("redir", &zero, &v, 0) : 0;
  });
  sockshim::unload_policy();
  return true;
}

}  // namespace recv_conf
