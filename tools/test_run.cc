// sockshim test-run POLICY PROGRAM [--input FILE|-] [--ctx JSON] [--repeat N] [--json]:
// run one program on given bytes and context against fake sockets, like
// BPF_PROG_TEST_RUN, and show everything it did.
#include <arpa/inet.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "policy/bytecode_program.h"
#include "policy/policy.h"
#include "policy/vocabulary.h"
#include "tools/commands.h"
#include "tools/fake_kernel.h"
#include "tools/policy_input.h"

namespace sockshim::tools {
namespace {

using json = nlohmann::ordered_json;
using namespace sockshim::policy;

constexpr const char kTestRunUsage[] =
    "usage: sockshim test-run POLICY PROGRAM [--input FILE|-] [--ctx JSON] [--repeat N]\n"
    "                         [--bytecode FILE] [--json]\n"
    "\n"
    "Runs one program of POLICY (a file, or - for standard input) once, on the bytes\n"
    "of --input and the context of --ctx, against fake sockets, as BPF_PROG_TEST_RUN\n"
    "runs a kernel program, and prints what it did: the rule that held, the verdict\n"
    "and return value, the redirect target and flags, apply_bytes and cork_bytes, the\n"
    "bytes after push/pop, every action with its helper's return value, storage and\n"
    "map changes, and log lines. No socket is touched.\n"
    "\n"
    "  --input FILE  the message (sk_msg), frame (sk_skb verdicts) or stream (parser);\n"
    "                - reads standard input; default: no bytes\n"
    "  --ctx JSON    the context, a JSON object with any of:\n"
    "                  family       \"AF_INET\" (default), \"AF_INET6\", \"AF_UNIX\" or a number\n"
    "                  local_ip4, remote_ip4   dotted text (default 127.0.0.1)\n"
    "                  local_ip6, remote_ip6   text (default ::)\n"
    "                  local_port, remote_port host-order numbers (default 0)\n"
    "                  op           sockops only, required there: \"active_established\",\n"
    "                               \"passive_established\", \"listen\", \"state_change\",\n"
    "                               \"tcp_connect\" or a number\n"
    "                  storage      {MAP: {FIELD: VALUE}}: the socket's sk_storage before\n"
    "                               the run (numbers; text for bytes[N] fields)\n"
    "                  maps         {MAP: [{\"key\": K, \"socket\": NAME}, ...]}: the exact\n"
    "                               entries of a sockmap/sockhash. K is an index, \"self\",\n"
    "                               \"peer\", an object {FIELD: VALUE} or an array in key\n"
    "                               order (VALUE: a number, or an address as text).\n"
    "                Maps not listed answer every redirect with a fake socket named\n"
    "                after the key (MAP[0], MAP{local_port=80, ...}), so redirects show\n"
    "                where bytes would go; a listed map (even []) holds only its entries\n"
    "                and a redirect to a key it does not hold drops (SK_DROP).\n"
    "  --repeat N    also run N more times and print the mean time per run (the\n"
    "                message is reset each time, storage is not)\n"
    "  --bytecode FILE  run the eBPF instructions in FILE (struct bpf_insn, 8 bytes\n"
    "                each, as `llvm-objcopy -O binary --only-section=SEC prog.o FILE`\n"
    "                extracts a program) instead of PROGRAM's rules, as a program of\n"
    "                PROGRAM's type with POLICY's maps: an lddw of BPF_PSEUDO_MAP_IDX\n"
    "                or BPF_PSEUDO_MAP_FD names the map by its index in POLICY. The\n"
    "                output then also has the instructions the run executed and its\n"
    "                fault (what, at which instruction index), if any\n"
    "  --json        one JSON object on standard output instead of text\n"
    "  -h, --help    this text\n"
    "\n"
    "Program kinds: sk_msg runs on the message (the window is its first 32 KiB;\n"
    "`size` is its length); sk_skb/stream_verdict and sk_skb/verdict run on the input\n"
    "as one frame (`len`); sockops runs for --ctx's op; sk_skb/stream_parser cuts the\n"
    "input into frames and prints their lengths, what is left, or its error.\n"
    "\n"
    "errors (exit status 2): unknown option, missing argument, no program named P,\n"
    "--ctx not a JSON object or a bad value in it (named by its JSON pointer),\n"
    "--repeat not a positive integer, unreadable --input, --bytecode unreadable, not\n"
    "whole instructions or refused by the load check (its message: \"insn N: ...\").\n"
    "A policy that does not\n"
    "load prints its errors as `sockshim check` does and exits 1. Otherwise 0,\n"
    "whatever the verdict.\n";

struct UsageError {
  std::string message;
};

[[noreturn]] void usage_error(std::string m) {
  throw UsageError{std::move(m)};
}

uint64_t ctx_uint(const json& v, const std::string& ptr, uint64_t max) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= max) return v.get<uint64_t>();
  usage_error("--ctx: " + ptr + ": expected an integer from 0 to " + std::to_string(max));
}

uint32_t ctx_ip4(const json& v, const std::string& ptr) {
  in_addr a;
  if (v.is_string() && inet_pton(AF_INET, v.get<std::string>().c_str(), &a) == 1) return a.s_addr;
  usage_error("--ctx: " + ptr + ": expected an IPv4 address");
}

std::array<uint8_t, 16> ctx_ip6(const json& v, const std::string& ptr) {
  std::array<uint8_t, 16> out;
  if (v.is_string() && inet_pton(AF_INET6, v.get<std::string>().c_str(), out.data()) == 1)
    return out;
  usage_error("--ctx: " + ptr + ": expected an IPv6 address");
}

struct Ctx {
  SocketTuple sk;
  std::optional<SockOp> op;
  json storage = json::object();
  json maps = json::object();
};

Ctx parse_ctx(const std::string& text) {
  Ctx c;
  c.sk.family = AF_INET;
  inet_pton(AF_INET, "127.0.0.1", &c.sk.local_ip4);
  c.sk.remote_ip4 = c.sk.local_ip4;
  if (text.empty()) return c;
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    usage_error(std::string("--ctx: not valid JSON: ") + e.what());
  }
  if (!j.is_object()) usage_error("--ctx: expected a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    const std::string p = "/" + k;
    if (k == "family") {
      if (const NamedValue* f =
              v.is_string() ? find_name(kFamilies, v.get<std::string>()) : nullptr)
        c.sk.family = static_cast<uint32_t>(f->value);
      else if (v.is_number_unsigned())
        c.sk.family = static_cast<uint32_t>(ctx_uint(v, p, UINT32_MAX));
      else
        usage_error("--ctx: /family: expected " + quoted_list(names_of(kFamilies)) +
                    " or a number");
    } else if (k == "local_ip4") {
      c.sk.local_ip4 = ctx_ip4(v, p);
    } else if (k == "remote_ip4") {
      c.sk.remote_ip4 = ctx_ip4(v, p);
    } else if (k == "local_ip6") {
      c.sk.local_ip6 = ctx_ip6(v, p);
    } else if (k == "remote_ip6") {
      c.sk.remote_ip6 = ctx_ip6(v, p);
    } else if (k == "local_port") {
      c.sk.local_port = static_cast<uint16_t>(ctx_uint(v, p, 65535));
    } else if (k == "remote_port") {
      c.sk.remote_port = static_cast<uint16_t>(ctx_uint(v, p, 65535));
    } else if (k == "op") {
      if (const NamedValue* op =
              v.is_string() ? find_name(kSockOps, v.get<std::string>()) : nullptr)
        c.op = static_cast<SockOp>(op->value);
      if (v.is_number_unsigned()) c.op = static_cast<SockOp>(ctx_uint(v, p, UINT32_MAX));
      if (!c.op)
        usage_error("--ctx: /op: expected " +
                    quoted_list(names_of(kSockOps, [](const NamedValue& n) { return n.alias; })) +
                    " or a number");
    } else if (k == "storage" || k == "maps") {
      if (!v.is_object()) usage_error("--ctx: " + p + ": expected an object");
      (k == "storage" ? c.storage : c.maps) = v;
    } else {
      usage_error("--ctx: unknown key \"" + k +
                  "\" (expected family, local_ip4, remote_ip4, local_ip6, remote_ip6, "
                  "local_port, remote_port, op, storage, maps)");
    }
  }
  return c;
}

uint32_t map_of(const Policy& pol, const std::string& name, const std::string& ptr) {
  const int idx = pol.map_index(name);
  if (idx < 0) usage_error("--ctx: " + ptr + ": no map named \"" + name + "\"");
  return static_cast<uint32_t>(idx);
}

// One key field's bytes from a --ctx value: a number, or an address as text.
void put_key_field(std::vector<uint8_t>& key, KeyField f, const json& v, const std::string& ptr) {
  const uint32_t size = key_field_size(f);
  const Literal lit = info(f).literal;
  if (lit == Literal::ip6) {
    const auto a = ctx_ip6(v, ptr);
    key.insert(key.end(), a.begin(), a.end());
    return;
  }
  uint64_t n;
  if (lit == Literal::ip4 && v.is_string()) {
    n = ctx_ip4(v, ptr);
  } else {
    n = ctx_uint(v, ptr, size == 8 ? UINT64_MAX : UINT32_MAX);
  }
  uint8_t b[8];
  if (size == 8) {
    memcpy(b, &n, 8);
  } else {
    const auto x = static_cast<uint32_t>(n);
    memcpy(b, &x, 4);
  }
  key.insert(key.end(), b, b + size);
}

// "self"/"peer" as the programs build them (POLICY.md, sockhash keys).
std::vector<uint8_t> tuple_key(const MapSpec& m, const SocketTuple& sk, bool peer,
                               const std::string& ptr) {
  std::vector<uint8_t> key;
  auto put32 = [&](uint32_t x) {
    uint8_t b[4];
    memcpy(b, &x, 4);
    key.insert(key.end(), b, b + 4);
  };
  for (KeyField f : m.key) {
    const bool swap = peer;
    switch (f) {
      case KeyField::family:
        put32(sk.family);
        break;
      case KeyField::local_ip4:
        put32(swap ? sk.remote_ip4 : sk.local_ip4);
        break;
      case KeyField::remote_ip4:
        put32(swap ? sk.local_ip4 : sk.remote_ip4);
        break;
      case KeyField::local_ip6: {
        const auto& a = swap ? sk.remote_ip6 : sk.local_ip6;
        key.insert(key.end(), a.begin(), a.end());
        break;
      }
      case KeyField::remote_ip6: {
        const auto& a = swap ? sk.local_ip6 : sk.remote_ip6;
        key.insert(key.end(), a.begin(), a.end());
        break;
      }
      case KeyField::local_port:
        put32(swap ? sk.remote_port : sk.local_port);
        break;
      case KeyField::remote_port:
        put32(swap ? sk.local_port : sk.remote_port);
        break;
      default:
        usage_error("--ctx: " + ptr + ": the key of map \"" + m.name +
                    "\" has u32/u64 fields: give an object or an array");
    }
  }
  return key;
}

std::vector<uint8_t> ctx_key(const MapSpec& m, const SocketTuple& sk, const json& v,
                             const std::string& ptr) {
  std::vector<uint8_t> key;
  if (m.type == MapType::sockmap) {
    put_key_field(key, KeyField::u32, v, ptr);
    return key;
  }
  if (v == "self" || v == "peer") return tuple_key(m, sk, v == "peer", ptr);
  if (v.is_array() && v.size() == m.key.size()) {
    for (size_t i = 0; i < v.size(); ++i)
      put_key_field(key, m.key[i], v[i], ptr + "/" + std::to_string(i));
    return key;
  }
  if (v.is_object()) {
    for (KeyField f : m.key) {
      const std::string name = key_field_name(f);
      if (!v.contains(name)) usage_error("--ctx: " + ptr + ": missing key field \"" + name + "\"");
      put_key_field(key, f, v[name], ptr + "/" + name);
    }
    return key;
  }
  usage_error("--ctx: " + ptr + ": expected \"self\", \"peer\", an object or an array of " +
              std::to_string(m.key.size()) + " values");
}

void setup_kernel(FakeKernel& k, const Policy& pol, const Ctx& c) {
  for (auto it = c.maps.begin(); it != c.maps.end(); ++it) {
    const std::string p = "/maps/" + it.key();
    const uint32_t map = map_of(pol, it.key(), p);
    const MapSpec& m = pol.maps[map];
    if (m.type == MapType::sk_storage)
      usage_error("--ctx: " + p + ": a sk_storage map: use \"storage\"");
    if (!it.value().is_array()) usage_error("--ctx: " + p + ": expected an array");
    k.clear_map(map);
    for (size_t i = 0; i < it.value().size(); ++i) {
      const json& e = it.value()[i];
      const std::string ep = p + "/" + std::to_string(i);
      if (!e.is_object() || !e.contains("key") || !e.contains("socket") || !e["socket"].is_string())
        usage_error("--ctx: " + ep + ": expected {\"key\": K, \"socket\": NAME}");
      const uint32_t sock = k.add_socket(e["socket"].get<std::string>());
      const long rc = k.insert(map, ctx_key(m, c.sk, e["key"], ep + "/key"), sock, BPF_ANY);
      if (rc < 0)
        usage_error("--ctx: " + ep + ": insert failed: " + strerror(static_cast<int>(-rc)));
    }
  }
  for (auto it = c.storage.begin(); it != c.storage.end(); ++it) {
    const std::string p = "/storage/" + it.key();
    const uint32_t map = map_of(pol, it.key(), p);
    const MapSpec& m = pol.maps[map];
    if (m.type != MapType::sk_storage) usage_error("--ctx: " + p + ": not a sk_storage map");
    if (!it.value().is_object()) usage_error("--ctx: " + p + ": expected an object");
    uint8_t* val = k.storage_get(map, true);
    for (auto f = it.value().begin(); f != it.value().end(); ++f) {
      const std::string fp = p + "/" + f.key();
      const ValueField* field = nullptr;
      for (const ValueField& vf : m.value)
        if (vf.name == f.key()) field = &vf;
      if (!field) usage_error("--ctx: " + fp + ": no such field in map \"" + m.name + "\"");
      if (field->kind == ValueField::Kind::bytes) {
        if (!f.value().is_string() || f.value().get<std::string>().size() > field->size)
          usage_error("--ctx: " + fp + ": expected text of at most " + std::to_string(field->size) +
                      " bytes");
        const std::string s = f.value().get<std::string>();
        memcpy(val + field->offset, s.data(), s.size());
      } else {
        uint64_t n;
        if (f.value().is_number_integer())
          n = f.value().is_number_unsigned() ? f.value().get<uint64_t>()
                                             : static_cast<uint64_t>(f.value().get<int64_t>());
        else
          usage_error("--ctx: " + fp + ": expected an integer");
        memcpy(val + field->offset, &n, field->size);  // little-endian host
      }
    }
  }
}

json storage_json(const MapSpec& m, const std::vector<uint8_t>* v) {
  if (!v) return nullptr;
  json out = json::object();
  for (const ValueField& f : m.value) {
    const uint8_t* p = v->data() + f.offset;
    if (f.kind == ValueField::Kind::bytes) {
      std::string s(reinterpret_cast<const char*>(p), f.size);
      out[f.name] = s;
      continue;
    }
    uint64_t n = 0;
    memcpy(&n, p, f.size);
    if (f.kind == ValueField::Kind::i64)
      out[f.name] = static_cast<int64_t>(n);
    else
      out[f.name] = n;
  }
  return out;
}

std::string printable(std::span<const uint8_t> b) {
  std::string out = "\"";
  static const char kHex[] = "0123456789abcdef";
  for (uint8_t c : b) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out + "\"";
}

std::string errno_text(long ret) {
  if (ret >= 0) return std::to_string(ret);
  static const std::pair<int, const char*> kNames[] = {
      {EINVAL, "EINVAL"},     {ENOENT, "ENOENT"},         {EEXIST, "EEXIST"},
      {E2BIG, "E2BIG"},       {EOPNOTSUPP, "EOPNOTSUPP"}, {ENOMEM, "ENOMEM"},
      {EMSGSIZE, "EMSGSIZE"}, {EBADMSG, "EBADMSG"},       {EBUSY, "EBUSY"}};
  for (const auto& [e, name] : kNames)
    if (-ret == e) return std::to_string(ret) + " (" + name + ")";
  return std::to_string(ret);
}

// Written after the timing loop so the runs cannot be optimised away.
volatile uint64_t g_sink;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

struct ActionLog : Tracer {
  json actions = json::array();
  json bytecode;  // a bytecode run: {"insns", "fault"}
  void action(size_t rule, size_t index, std::string_view name, long ret) override {
    actions.push_back({{"rule", rule}, {"action", index}, {"name", name}, {"ret", ret}});
  }
  void bytecode_run(uint64_t insns, const BytecodeFault& f) override {
    bytecode = {{"insns", insns}, {"fault", nullptr}};
    if (f.kind) bytecode["fault"] = {{"kind", f.kind}, {"insn", f.insn}, {"addr", f.addr}};
  }
};

std::string read_input(const std::string& path, const char* option = "--input") {
  if (path == "-") return std::string((std::istreambuf_iterator<char>(std::cin)), {});
  std::ifstream in(path, std::ios::binary);
  if (!in) usage_error(std::string(option) + ": cannot read " + path + ": " + strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Everything one run did, as JSON; text output is printed from it.
json run_once(const Policy& pol, const Program& prog, const Ctx& ctx, const std::string& input,
              FakeKernel& k) {
  json out;
  out["program"] = prog.name();
  out["type"] = program_type_name(prog.type());
  const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(input.data()),
                                       input.size());
  if (prog.type() == ProgramType::stream_parser) {
    json frames = json::array();
    size_t off = 0;
    int64_t r = 0;
    while (off < bytes.size()) {
      r = prog.parse(bytes.subspan(off));
      if (r <= 0) break;
      frames.push_back(r);
      off += static_cast<size_t>(std::min<int64_t>(r, static_cast<int64_t>(bytes.size() - off)));
    }
    out["frames"] = frames;
    out["rest"] = bytes.size() - off;
    if (r < 0) out["error"] = errno_text(r);
    return out;
  }
  std::map<uint32_t, json> storage_before;
  std::map<uint32_t, std::map<std::vector<uint8_t>, uint32_t>> maps_before;
  for (uint32_t i = 0; i < pol.maps.size(); ++i) {
    if (pol.maps[i].type == MapType::sk_storage)
      storage_before[i] = storage_json(pol.maps[i], k.storage(i));
    else
      maps_before[i] = k.entries(i);
  }
  ActionLog trace;
  k.reset_run();
  RunResult res;
  SkMsg msg(bytes);
  std::vector<uint8_t> frame(bytes.begin(), bytes.end());  // a verdict may rewrite it
  if (prog.type() == ProgramType::sk_msg) {
    res = prog.run_msg(msg, ctx.sk, k, &trace);
  } else if (prog.type() == ProgramType::sockops) {
    res = prog.run_sockops(*ctx.op, ctx.sk, k, &trace);
  } else {
    res = prog.run_skb(std::span<uint8_t>(frame), ctx.sk, k, &trace);
  }
  out["rule"] = res.rule;
  if (!trace.bytecode.is_null()) {
    out["insns"] = trace.bytecode["insns"];
    out["fault"] = trace.bytecode["fault"];
  }
  if (prog.is_verdict()) {
    out["verdict"] = verdict_name(res.verdict);
    out["ret"] = res.ret == SK_PASS ? "SK_PASS" : "SK_DROP";
    if (res.verdict == Verdict::redirect && k.redirect_target()) {
      const auto& t = *k.redirect_target();
      out["redirect"] = {
          {"map", pol.maps[t.map].name},
          {"key", format_key(pol.maps[t.map], t.key)},
          {"target", t.target},
          {"flags", t.flags == BPF_F_INGRESS ? json("BPF_F_INGRESS") : json(t.flags)}};
    }
  }
  if (prog.type() == ProgramType::sk_msg) {
    out["apply_bytes"] = msg.apply_bytes();
    out["cork_bytes"] = msg.cork_bytes();
    out["size_before"] = input.size();
    out["size"] = msg.size();
    out["bytes"] = printable(msg.bytes());
  } else if (prog.type() != ProgramType::sockops) {
    out["bytes"] = printable(frame);  // after the run: a bytecode verdict may write the frame
  }
  for (json& a : trace.actions) {
    const std::string n = a["name"].get<std::string>();
    const long ret = a["ret"].get<long>();
    a["ret_text"] = n == "redirect" || n == "pass" || n == "drop"
                        ? (ret == SK_PASS ? "SK_PASS" : "SK_DROP")
                        : errno_text(ret);
  }
  out["actions"] = trace.actions;
  json storage = json::array();
  for (const auto& [i, before] : storage_before) {
    json after = storage_json(pol.maps[i], k.storage(i));
    if (after != before)
      storage.push_back({{"map", pol.maps[i].name}, {"before", before}, {"after", after}});
  }
  out["storage"] = storage;
  json maps = json::array();
  for (const auto& [i, before] : maps_before) {
    const auto& after = k.entries(i);
    for (const auto& [key, sock] : after)
      if (!before.count(key) || before.at(key) != sock)
        maps.push_back({{"map", pol.maps[i].name},
                        {"change", "update"},
                        {"key", format_key(pol.maps[i], key)},
                        {"socket", k.socket_name(sock)}});
    for (const auto& [key, sock] : before)
      if (!after.count(key))
        maps.push_back({{"map", pol.maps[i].name},
                        {"change", "delete"},
                        {"key", format_key(pol.maps[i], key)},
                        {"socket", k.socket_name(sock)}});
  }
  out["maps"] = maps;
  out["log"] = k.log_lines();
  return out;
}

// Text output shows the first 256 characters of the bytes; --json has them all.
std::string shorten(const std::string& s) {
  if (s.size() <= 256) return s;
  return s.substr(0, 256) + "... (" + std::to_string(s.size() - 256) + " more characters)";
}

void print_text(const json& r) {
  std::cout << "program: " << r["program"].get<std::string>() << " ("
            << r["type"].get<std::string>() << ")\n";
  if (r.contains("frames")) {
    std::cout << "frames: " << r["frames"].size();
    if (!r["frames"].empty()) {
      std::cout << " (";
      for (size_t i = 0; i < r["frames"].size(); ++i)
        std::cout << (i ? ", " : "") << r["frames"][i].get<int64_t>();
      std::cout << " bytes)";
    }
    std::cout << "\n";
    if (r.contains("error"))
      std::cout << "error: " << r["error"].get<std::string>() << " (" << r["rest"].get<size_t>()
                << " bytes not delivered)\n";
    else
      std::cout << "rest: " << r["rest"].get<size_t>() << " bytes wait for more\n";
  } else {
    const int rule = r["rule"].get<int>();
    if (r.contains("insns")) {
      std::cout << "bytecode: " << r["insns"].get<uint64_t>() << " instructions\n";
      if (const json& f = r["fault"]; !f.is_null()) {
        std::cout << "fault: insn " << f["insn"].get<uint32_t>() << ": "
                  << f["kind"].get<std::string>();
        if (f["addr"].get<uint64_t>()) {
          char addr[32];
          snprintf(addr, sizeof addr, " at 0x%llx", (unsigned long long)f["addr"].get<uint64_t>());
          std::cout << addr;
        }
        std::cout << "\n";
      }
    } else {
      std::cout << "rule: " << (rule < 0 ? std::string("none held") : std::to_string(rule)) << "\n";
    }
    if (r.contains("verdict"))
      std::cout << "verdict: " << r["verdict"].get<std::string>() << " ("
                << r["ret"].get<std::string>() << ")\n";
    if (r.contains("redirect")) {
      const json& t = r["redirect"];
      std::cout << "redirect: " << t["key"].get<std::string>() << " -> "
                << t["target"].get<std::string>() << ", flags " << t["flags"].dump() << "\n";
    }
    if (r.contains("size")) {
      std::cout << "apply_bytes: " << r["apply_bytes"] << "\ncork_bytes: " << r["cork_bytes"]
                << "\nsize: " << r["size"] << " (was " << r["size_before"] << ")\n";
    }
    if (r.contains("bytes"))
      std::cout << "bytes: " << shorten(r["bytes"].get<std::string>()) << "\n";
    for (const json& a : r["actions"])
      std::cout << "action: rule " << a["rule"] << " #" << a["action"] << " "
                << a["name"].get<std::string>() << " -> " << a["ret_text"].get<std::string>()
                << "\n";
    for (const json& s : r["storage"])
      std::cout << "storage: " << s["map"].get<std::string>() << ": " << dump(s["before"]) << " -> "
                << dump(s["after"]) << "\n";
    for (const json& m : r["maps"])
      std::cout << "map: " << m["change"].get<std::string>() << " " << m["key"].get<std::string>()
                << " = " << m["socket"].get<std::string>() << "\n";
    for (const json& l : r["log"]) std::cout << "log: " << l.get<std::string>() << "\n";
  }
  if (r.contains("ns_per_run"))
    std::cout << "time: " << r["ns_per_run"].get<double>() << " ns per run (" << r["repeat"]
              << " runs)\n";
}

// --bytecode: the instructions of `path` as a program named and typed as
// `like`, with pol's maps by index.
std::unique_ptr<Program> load_bytecode(const std::string& path, const Policy& pol,
                                       const Program& like) {
  const std::string bytes = read_input(path, "--bytecode");
  if (bytes.empty() || bytes.size() % sizeof(bpf_insn))
    usage_error("--bytecode: " + path + ": " + std::to_string(bytes.size()) +
                " bytes, not a whole number of 8-byte instructions");
  std::vector<bpf_insn> insns(bytes.size() / sizeof(bpf_insn));
  memcpy(insns.data(), bytes.data(), bytes.size());
  auto resolve = [&](uint8_t pseudo, int32_t fd, uint32_t, bpf::MapRef* r) {
    if (pseudo != BPF_PSEUDO_MAP_IDX && pseudo != BPF_PSEUDO_MAP_FD) return -EINVAL;
    if (fd < 0 || static_cast<size_t>(fd) >= pol.maps.size()) return -EBADF;
    r->value = static_cast<uint64_t>(fd);
    return 0;
  };
  std::unique_ptr<Program> out;
  std::string log;
  if (load_bytecode_program(like.name(), like.type(), insns, resolve, &out, &log) != 0)
    usage_error("--bytecode: " + path + ": " + log);
  return out;
}

}  // namespace

int test_run_main(int argc, char** argv) {
  std::vector<std::string> pos;
  std::optional<std::string> input_path, ctx_text, bytecode_path;
  uint64_t repeat = 0;
  bool json_out = false;
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) usage_error(a + " needs a value");
        return argv[++i];
      };
      if (a == "-h" || a == "--help") {
        fputs(kTestRunUsage, stdout);
        return 0;
      } else if (a == "--json") {
        json_out = true;
      } else if (a == "--input") {
        input_path = value();
      } else if (a == "--ctx") {
        ctx_text = value();
      } else if (a == "--bytecode") {
        bytecode_path = value();
      } else if (a == "--repeat") {
        const std::string v = value();
        char* end = nullptr;
        errno = 0;
        const unsigned long long n = strtoull(v.c_str(), &end, 10);
        if (v.empty() || *end || errno || n == 0 || v[0] == '-')
          usage_error("--repeat: expected a positive integer, got '" + v + "'");
        repeat = n;
      } else if (a.size() > 1 && a[0] == '-') {
        usage_error("unknown option '" + a + "'");
      } else {
        pos.push_back(a);
      }
    }
    if (pos.size() != 2) usage_error("expected POLICY and PROGRAM");
    if (pos[0] == "-" && input_path == "-")
      usage_error("POLICY and --input cannot both be standard input");
    if (bytecode_path == "-" && (pos[0] == "-" || input_path == "-"))
      usage_error("--bytecode cannot be standard input when POLICY or --input is");

    const std::string name = policy_display_name(pos[0]);
    const LoadResult lr = load_policy_arg(pos[0]);
    if (!lr.ok()) {
      for (const LoadError& e : lr.errors) std::cerr << e.format(name) << "\n";
      std::cerr << name << ": " << lr.errors.size()
                << (lr.errors.size() == 1 ? " error" : " errors") << "\n";
      return 1;
    }
    const Policy& pol = *lr.policy;
    const Program* prog = pol.program(pos[1]);
    if (!prog) {
      std::string names;
      for (const auto& p : pol.programs) names += (names.empty() ? "" : ", ") + p->name();
      usage_error("no program named '" + pos[1] + "' in " + name +
                  " (programs: " + (names.empty() ? "none" : names) + ")");
    }
    std::unique_ptr<Program> bytecode;
    if (bytecode_path) {
      bytecode = load_bytecode(*bytecode_path, pol, *prog);
      prog = bytecode.get();
    }
    const Ctx ctx = parse_ctx(ctx_text.value_or(""));
    if (prog->type() == ProgramType::sockops && !ctx.op)
      usage_error("--ctx: a sockops program needs \"op\"");
    const std::string input = input_path ? read_input(*input_path) : std::string();

    FakeKernel kernel(pol);
    setup_kernel(kernel, pol, ctx);
    json result = run_once(pol, *prog, ctx, input, kernel);
    if (repeat) {
      FakeKernel bench(pol);
      setup_kernel(bench, pol, ctx);
      const std::span<const uint8_t> bytes(reinterpret_cast<const uint8_t*>(input.data()),
                                           input.size());
      SkMsg msg;
      std::vector<uint8_t> frame;
      uint64_t sink = 0;
      const auto t0 = std::chrono::steady_clock::now();
      for (uint64_t i = 0; i < repeat; ++i) {
        switch (prog->type()) {
          case ProgramType::sk_msg:
            msg.assign(bytes);
            sink += prog->run_msg(msg, ctx.sk, bench).ret;
            break;
          case ProgramType::sockops:
            sink += prog->run_sockops(*ctx.op, ctx.sk, bench).ret;
            break;
          case ProgramType::stream_parser:
            sink += static_cast<uint64_t>(prog->parse(bytes));
            break;
          default:
            frame.assign(bytes.begin(), bytes.end());
            sink += prog->run_skb(std::span<uint8_t>(frame), ctx.sk, bench).ret;
        }
      }
      const auto t1 = std::chrono::steady_clock::now();
      result["repeat"] = repeat;
      result["ns_per_run"] =
          std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(repeat);
      g_sink = sink;
    }
    if (json_out)
      std::cout << dump(result) << "\n";
    else
      print_text(result);
    return 0;
  } catch (const UsageError& e) {
    std::cerr << "sockshim test-run: " << e.message << " (see sockshim test-run --help)\n";
    return kExitUsage;
  }
}

}  // namespace sockshim::tools
