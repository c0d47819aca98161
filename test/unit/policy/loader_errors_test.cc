// Malformed policies: each must be refused with the exact pointer and message.
#include <catch2/catch.hpp>
#include <string>

#include "policy/policy.h"

using sockshim::policy::load_policy_text;

namespace {

struct Case {
  const char* name;
  std::string text;
  const char* pointer;
  const char* message;
};

// A policy with one of each map type and a few programs, so each case can
// break one thing and reference the rest.
std::string with(const std::string& maps, const std::string& programs,
                 const std::string& attach = "[]", const std::string& sockops = "[]") {
  return R"({"version": 1, "maps": {)" + maps + R"(}, "programs": {)" + programs +
         R"(}, "attach": )" + attach + R"(, "sockops": )" + sockops + "}";
}

const std::string kMaps =
    R"("sm": {"type": "sockmap", "max_entries": 4},
       "sh": {"type": "sockhash", "max_entries": 4, "key": ["local_ip4", "local_port", "remote_ip4", "remote_port"]},
       "st": {"type": "sk_storage", "flags": ["BPF_F_NO_PREALLOC"], "value": {"bytes": "u64", "name": "bytes[8]", "delta": "i64"}})";

std::string ip6_fields(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += "\"local_ip6\", ";
  return out;
}

std::string msg_prog(const std::string& rule) {
  return R"("p": {"type": "sk_msg", "rules": [)" + rule + "]}";
}

const Case kCases[] = {
    // top level
    {"not an object", "[]", "", "expected an object, found an array"},
    {"missing version", R"({"maps": {}})", "", "missing required key \"version\""},
    {"wrong version", R"({"version": 2})", "/version", "expected 1 (the only policy version)"},
    {"unknown top-level key", R"({"version": 1, "map": {}})", "/map",
     "unknown key \"map\" (expected one of \"version\", \"maps\", \"programs\", \"attach\", "
     "\"sockops\")"},
    {"maps not an object", R"({"version": 1, "maps": []})", "/maps",
     "expected an object, found an array"},
    {"duplicate map name",
     R"({"version": 1, "maps": {"a": {"type": "sockmap", "max_entries": 1}, "a": {"type": "sockmap", "max_entries": 1}}})",
     "/maps/a", "duplicate key \"a\""},
    // maps
    {"bad map type", with(R"("m": {"type": "array", "max_entries": 1})", ""), "/maps/m/type",
     "expected one of \"sockmap\", \"sockhash\", \"sk_storage\""},
    {"missing map type", with(R"("m": {"max_entries": 1})", ""), "/maps/m",
     "missing required key \"type\""},
    {"max_entries 0", with(R"("m": {"type": "sockmap", "max_entries": 0})", ""),
     "/maps/m/max_entries", "must be greater than 0 (EINVAL)"},
    {"max_entries missing", with(R"("m": {"type": "sockhash", "key": ["family"]})", ""), "/maps/m",
     "missing required key \"max_entries\""},
    {"max_entries over the limit",
     with(R"("m": {"type": "sockmap", "max_entries": 2000000000})", ""), "/maps/m/max_entries",
     "2000000000 is more than 1048576, the most entries a map may have (no process has more "
     "sockets)"},
    {"sockhash max_entries over the limit",
     with(R"("m": {"type": "sockhash", "max_entries": 1048577, "key": ["local_port"]})", ""),
     "/maps/m/max_entries",
     "1048577 is more than 1048576, the most entries a map may have (no process has more "
     "sockets)"},
    {"max_entries negative", with(R"("m": {"type": "sockmap", "max_entries": -3})", ""),
     "/maps/m/max_entries", "expected an integer from 1 to 4294967295"},
    {"value_size 2", with(R"("m": {"type": "sockmap", "max_entries": 1, "value_size": 2})", ""),
     "/maps/m/value_size", "expected 4 or 8 (EINVAL)"},
    {"unknown map key", with(R"("m": {"type": "sockmap", "max_entries": 1, "size": 2})", ""),
     "/maps/m/size",
     "unknown key \"size\" (expected one of \"type\", \"max_entries\", \"key\", \"value_size\", "
     "\"value\", \"flags\")"},
    {"sockmap with key",
     with(R"("m": {"type": "sockmap", "max_entries": 1, "key": ["family"]})", ""), "/maps/m/key",
     "\"key\" is not allowed for a sockmap (its key is a u32 index)"},
    {"sockmap with flags",
     with(R"("m": {"type": "sockmap", "max_entries": 1, "flags": ["BPF_F_NO_PREALLOC"]})", ""),
     "/maps/m/flags", "\"flags\" is not allowed for a sockmap"},
    {"sockhash unknown key field",
     with(R"("m": {"type": "sockhash", "max_entries": 1, "key": ["local_ip4", "dport"]})", ""),
     "/maps/m/key/1",
     "expected one of \"family\", \"local_ip4\", \"remote_ip4\", \"local_ip6\", \"remote_ip6\", "
     "\"local_port\", \"remote_port\", \"u32\", \"u64\""},
    {"sockhash empty key", with(R"("m": {"type": "sockhash", "max_entries": 1, "key": []})", ""),
     "/maps/m/key", "expected at least one key field (key_size 0 is EINVAL)"},
    {"sockhash key too large",
     with(R"("m": {"type": "sockhash", "max_entries": 1, "key": [)" + ip6_fields(32) + R"("u32"]})",
          ""),
     "/maps/m/key", "key is 516 bytes: more than 512 (E2BIG)"},
    {"sk_storage without NO_PREALLOC",
     with(R"("m": {"type": "sk_storage", "flags": ["BPF_F_CLONE"], "value": {"n": "u64"}})", ""),
     "/maps/m/flags", "must contain \"BPF_F_NO_PREALLOC\" (EINVAL)"},
    {"sk_storage without flags", with(R"("m": {"type": "sk_storage", "value": {"n": "u64"}})", ""),
     "/maps/m", "missing required key \"flags\""},
    {"sk_storage with max_entries",
     with(
         R"("m": {"type": "sk_storage", "max_entries": 16, "flags": ["BPF_F_NO_PREALLOC"], "value": {"n": "u64"}})",
         ""),
     "/maps/m/max_entries", "must be 0 or absent for sk_storage (EINVAL)"},
    {"sk_storage bad flag",
     with(
         R"("m": {"type": "sk_storage", "flags": ["BPF_F_NO_PREALLOC", "BPF_F_RDONLY"], "value": {"n": "u64"}})",
         ""),
     "/maps/m/flags/1", "expected one of \"BPF_F_NO_PREALLOC\", \"BPF_F_CLONE\""},
    {"sk_storage bad value type",
     with(R"("m": {"type": "sk_storage", "flags": ["BPF_F_NO_PREALLOC"], "value": {"n": "u128"}})",
          ""),
     "/maps/m/value/n",
     "expected \"u8\", \"u16\", \"u32\", \"u64\", \"i64\" or \"bytes[N]\" (N from 1 to 65535)"},
    {"sk_storage empty value",
     with(R"("m": {"type": "sk_storage", "flags": ["BPF_F_NO_PREALLOC"], "value": {}})", ""),
     "/maps/m/value", "expected at least one field (value_size 0 is EINVAL)"},
    {"sk_storage value_size",
     with(
         R"("m": {"type": "sk_storage", "flags": ["BPF_F_NO_PREALLOC"], "value": {"n": "u8"}, "value_size": 8})",
         ""),
     "/maps/m/value_size",
     "\"value_size\" is not allowed for a sk_storage (the value layout sets it)"},
    // programs
    {"bad program type", with(kMaps, R"("p": {"type": "xdp", "rules": []})"), "/programs/p/type",
     "expected one of \"sk_msg\", \"sk_skb/stream_parser\", \"sk_skb/stream_verdict\", "
     "\"sk_skb/verdict\", \"sockops\""},
    {"rules not an array", with(kMaps, R"("p": {"type": "sk_msg", "rules": {}})"),
     "/programs/p/rules", "expected an array, found an object"},
    {"bad default", with(kMaps, R"("p": {"type": "sk_msg", "default": "redirect", "rules": []})"),
     "/programs/p/default", "expected one of \"pass\", \"drop\""},
    {"default in sockops",
     with(kMaps, R"("p": {"type": "sockops", "default": "pass", "rules": []})"),
     "/programs/p/default", "unknown key \"default\" (expected one of \"type\", \"rules\")"},
    {"sticky_drop not a boolean",
     with(kMaps, R"("p": {"type": "sk_msg", "sticky_drop": "no", "rules": []})"),
     "/programs/p/sticky_drop", "expected true or false"},
    {"sticky_drop on a verdict",
     with(kMaps, R"("v": {"type": "sk_skb/verdict", "sticky_drop": false, "rules": []})"),
     "/programs/v/sticky_drop",
     "unknown key \"sticky_drop\" (expected one of \"type\", \"rules\", \"default\")"},
    {"rule without do", with(kMaps, msg_prog(R"({"if": {"local_port": 1}})")),
     "/programs/p/rules/0", "missing required key \"do\""},
    {"unknown condition", with(kMaps, msg_prog(R"({"if": {"dport": 1}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/dport",
     "unknown condition \"dport\" (expected a context field, \"data\", \"storage\", \"all\", "
     "\"any\" or \"not\")"},
    {"port out of range", with(kMaps, msg_prog(R"({"if": {"local_port": 70000}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/local_port", "expected an integer from 0 to 65535"},
    {"port in list out of range",
     with(kMaps, msg_prog(R"({"if": {"remote_port": [1, -1]}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/remote_port/1", "expected an integer from 0 to 65535"},
    {"bad ip4", with(kMaps, msg_prog(R"({"if": {"local_ip4": "10.0.0.300"}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/local_ip4", "expected an IPv4 address in dotted form (\"127.0.0.1\")"},
    {"bad family", with(kMaps, msg_prog(R"({"if": {"family": "AF_PACKET"}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/family",
     "expected one of \"AF_INET\", \"AF_INET6\", \"AF_UNIX\" or an integer"},
    {"len in sk_msg", with(kMaps, msg_prog(R"({"if": {"len": 3}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/len", "field \"len\" is not available in sk_msg programs"},
    {"op in sk_msg", with(kMaps, msg_prog(R"({"if": {"op": "listen"}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/op", "field \"op\" is not available in sk_msg programs"},
    {"bad op",
     with(kMaps, R"("s": {"type": "sockops", "rules": [{"if": {"op": "accept"}, "do": []}]})"),
     "/programs/s/rules/0/if/op",
     "expected one of \"active_established\", \"passive_established\", \"listen\", "
     "\"state_change\", \"close\", \"tcp_connect\" or an integer"},
    {"unknown comparison",
     with(kMaps, msg_prog(R"({"if": {"size": {"between": [1, 2]}}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/size/between",
     "unknown comparison \"between\" (expected one of \"eq\", \"ne\", \"lt\", \"le\", \"gt\", "
     "\"ge\", \"in\", \"range\")"},
    {"bad range", with(kMaps, msg_prog(R"({"if": {"size": {"range": [1]}}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/size/range", "expected [lo, hi]"},
    {"unknown data matcher",
     with(kMaps, msg_prog(R"({"if": {"data": {"suffix": "x"}}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/data/suffix",
     "unknown key \"suffix\" (expected one of \"prefix\", \"contains\", \"equals\", \"at\", "
     "\"u8\", \"be16\", \"be32\", \"le16\", \"le32\")"},
    {"odd hex",
     with(kMaps, msg_prog(R"({"if": {"data": {"prefix": {"hex": "0a0"}}}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/data/prefix/hex", "expected an even number of hex digits"},
    {"bad hex digit",
     with(kMaps, msg_prog(R"({"if": {"data": {"prefix": {"hex": "zz"}}}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/data/prefix/hex", "expected hex digits (0-9, a-f)"},
    {"integer without at",
     with(kMaps, msg_prog(R"({"if": {"data": {"be16": 80}}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/data/be16", "\"be16\" needs \"at\", the offset of the integer"},
    {"at without integer",
     with(kMaps, msg_prog(R"({"if": {"data": {"at": 0, "prefix": "a"}}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/data/at",
     "\"at\" needs one of \"u8\", \"be16\", \"be32\", \"le16\", \"le32\""},
    {"u8 too big",
     with(kMaps, msg_prog(R"({"if": {"data": {"at": 0, "u8": 256}}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/data/u8", "expected an integer from 0 to 255"},
    {"data in sockops",
     with(kMaps,
          R"("s": {"type": "sockops", "rules": [{"if": {"data": {"prefix": "a"}}, "do": []}]})"),
     "/programs/s/rules/0/if/data", "\"data\" is not available in sockops programs"},
    {"storage cond on sockmap",
     with(kMaps,
          msg_prog(
              R"({"if": {"storage": {"map": "sm", "field": "bytes", "gt": 1}}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/storage/map", "map \"sm\" is a sockmap, expected a sk_storage"},
    {"storage cond unknown field",
     with(kMaps,
          msg_prog(
              R"({"if": {"storage": {"map": "st", "field": "count", "gt": 1}}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/storage/field",
     "map \"st\" has no field \"count\" (fields: \"bytes\", \"name\", \"delta\")"},
    {"storage cond without comparison",
     with(kMaps,
          msg_prog(R"({"if": {"storage": {"map": "st", "field": "bytes"}}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/storage",
     "expected at least one comparison (\"eq\", \"ne\", \"lt\", \"le\", \"gt\", \"ge\", \"in\", "
     "\"range\")"},
    {"storage cond on bytes field",
     with(kMaps,
          msg_prog(
              R"({"if": {"storage": {"map": "st", "field": "name", "eq": 1}}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/storage/field",
     "field \"name\" is bytes[N]: only integer fields compare"},
    {"not with array", with(kMaps, msg_prog(R"({"if": {"not": [{"size": 1}]}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/not", "expected an object, found an array"},
    {"any item not an object",
     with(kMaps, msg_prog(R"({"if": {"any": [{"size": 1}, 3]}, "do": ["drop"]})")),
     "/programs/p/rules/0/if/any/1", "expected an object, found a number"},
    // actions
    {"unknown verdict string", with(kMaps, msg_prog(R"({"do": ["accept"]})")),
     "/programs/p/rules/0/do/0", "expected \"pass\", \"drop\" or an action object"},
    {"action object with two keys",
     with(kMaps, msg_prog(R"({"do": [{"apply_bytes": 1, "cork_bytes": 2}]})")),
     "/programs/p/rules/0/do/0",
     "expected \"pass\", \"drop\" or an object with exactly one action key"},
    {"unknown action", with(kMaps, msg_prog(R"({"do": [{"redirect_map": {}}]})")),
     "/programs/p/rules/0/do/0/redirect_map",
     "unknown action \"redirect_map\" (expected one of \"pass\", \"drop\", \"redirect\", "
     "\"apply_bytes\", \"cork_bytes\", \"pull_data\", \"push_data\", \"pop_data\", \"storage\", "
     "\"storage_delete\", \"map_update\", \"map_delete\", \"log\")"},
    {"dangling redirect map",
     with(kMaps, msg_prog(R"({"do": [{"redirect": {"map": "nope", "key": 0}}]})")),
     "/programs/p/rules/0/do/0/redirect/map", "no map named \"nope\""},
    {"redirect to sk_storage",
     with(kMaps, msg_prog(R"({"do": [{"redirect": {"map": "st", "key": 0}}]})")),
     "/programs/p/rules/0/do/0/redirect/map",
     "map \"st\" is a sk_storage, expected a sockmap or sockhash"},
    {"redirect bad flag name",
     with(
         kMaps,
         msg_prog(R"({"do": [{"redirect": {"map": "sm", "key": 0, "flags": ["BPF_F_EGRESS"]}}]})")),
     "/programs/p/rules/0/do/0/redirect/flags/0", "expected one of \"BPF_F_INGRESS\""},
    {"redirect without key", with(kMaps, msg_prog(R"({"do": [{"redirect": {"map": "sm"}}]})")),
     "/programs/p/rules/0/do/0/redirect", "missing required key \"key\""},
    {"sockmap key self",
     with(kMaps, msg_prog(R"({"do": [{"redirect": {"map": "sm", "key": "self"}}]})")),
     "/programs/p/rules/0/do/0/redirect/key",
     "map \"sm\" is a sockmap: its key is an index, not \"self\""},
    {"sockhash key missing field",
     with(
         kMaps,
         msg_prog(
             R"({"do": [{"redirect": {"map": "sh", "key": {"local_ip4": "remote_ip4", "local_port": "remote_port", "remote_ip4": "local_ip4"}}}]})")),
     "/programs/p/rules/0/do/0/redirect/key", "missing key field \"remote_port\""},
    {"sockhash key extra field",
     with(
         kMaps,
         msg_prog(
             R"({"do": [{"redirect": {"map": "sh", "key": {"local_ip4": "remote_ip4", "local_port": "remote_port", "remote_ip4": "local_ip4", "remote_port": "local_port", "family": "family"}}}]})")),
     "/programs/p/rules/0/do/0/redirect/key/family",
     "\"family\" is not a field of the key of map \"sh\" (\"local_ip4\", \"local_port\", "
     "\"remote_ip4\", \"remote_port\")"},
    {"sockhash key ip6 into ip4",
     with(
         kMaps,
         msg_prog(
             R"({"do": [{"redirect": {"map": "sh", "key": ["local_ip6", "local_port", "remote_ip4", "remote_port"]}}]})")),
     "/programs/p/rules/0/do/0/redirect/key/0",
     "key field \"local_ip4\" is 4 bytes; context field \"local_ip6\" does not fit"},
    {"sockhash key wrong count",
     with(kMaps, msg_prog(R"({"do": [{"redirect": {"map": "sh", "key": ["local_ip4"]}}]})")),
     "/programs/p/rules/0/do/0/redirect/key", "expected 4 values, one per key field of map \"sh\""},
    {"self with u32 field",
     with(kMaps + R"(, "hu": {"type": "sockhash", "max_entries": 2, "key": ["u32"]})",
          msg_prog(R"({"do": [{"redirect": {"map": "hu", "key": "self"}}]})")),
     "/programs/p/rules/0/do/0/redirect/key",
     "key field \"u32\" of map \"hu\" has no context field: use a key object"},
    {"apply_bytes negative", with(kMaps, msg_prog(R"({"do": [{"apply_bytes": -1}]})")),
     "/programs/p/rules/0/do/0/apply_bytes", "expected an integer from 0 to 4294967295"},
    {"pull_data without end", with(kMaps, msg_prog(R"({"do": [{"pull_data": {"start": 0}}]})")),
     "/programs/p/rules/0/do/0/pull_data", "missing required key \"end\""},
    {"push_data bytes number",
     with(kMaps, msg_prog(R"({"do": [{"push_data": {"start": 0, "bytes": 3}}]})")),
     "/programs/p/rules/0/do/0/push_data/bytes", "expected a string or {\"hex\": \"...\"}"},
    {"pop_data in stream verdict",
     with(
         kMaps,
         R"("v": {"type": "sk_skb/stream_verdict", "rules": [{"do": [{"pop_data": {"start": 0, "len": 1}}]}]})"),
     "/programs/v/rules/0/do/0/pop_data",
     "\"pop_data\" is not available in sk_skb/stream_verdict programs"},
    {"redirect in sockops",
     with(
         kMaps,
         R"("s": {"type": "sockops", "rules": [{"do": [{"redirect": {"map": "sm", "key": 0}}]}]})"),
     "/programs/s/rules/0/do/0/redirect", "\"redirect\" is not available in sockops programs"},
    {"drop in sockops", with(kMaps, R"("s": {"type": "sockops", "rules": [{"do": ["drop"]}]})"),
     "/programs/s/rules/0/do/0",
     "\"drop\" is not available in sockops programs (they return no verdict)"},
    {"storage action on sockhash",
     with(kMaps, msg_prog(R"({"do": [{"storage": {"map": "sh", "create": true}}]})")),
     "/programs/p/rules/0/do/0/storage/map", "map \"sh\" is a sockhash, expected a sk_storage"},
    {"storage add unknown field",
     with(kMaps,
          msg_prog(R"({"do": [{"storage": {"map": "st", "create": true, "add": {"count": 1}}}]})")),
     "/programs/p/rules/0/do/0/storage/add/count",
     "map \"st\" has no field \"count\" (fields: \"bytes\", \"name\", \"delta\")"},
    {"storage add from len in sk_msg",
     with(kMaps,
          msg_prog(
              R"({"do": [{"storage": {"map": "st", "create": true, "add": {"bytes": "len"}}}]})")),
     "/programs/p/rules/0/do/0/storage/add/bytes",
     "expected an integer or a context field of sk_msg programs"},
    {"storage set bytes too long",
     with(kMaps, msg_prog(R"({"do": [{"storage": {"map": "st", "set": {"name": "123456789"}}}]})")),
     "/programs/p/rules/0/do/0/storage/set/name", "expected at most 8 bytes"},
    {"storage create not bool",
     with(kMaps, msg_prog(R"({"do": [{"storage": {"map": "st", "create": 1}}]})")),
     "/programs/p/rules/0/do/0/storage/create", "expected true or false"},
    {"map_update bad flags",
     with(
         kMaps,
         R"("s": {"type": "sockops", "rules": [{"do": [{"map_update": {"map": "sm", "key": 0, "flags": "BPF_F_LOCK"}}]}]})"),
     "/programs/s/rules/0/do/0/map_update/flags",
     "expected one of \"BPF_ANY\", \"BPF_NOEXIST\", \"BPF_EXIST\""},
    {"map_delete with flags",
     with(
         kMaps,
         R"("s": {"type": "sockops", "rules": [{"do": [{"map_delete": {"map": "sm", "key": 0, "flags": "BPF_ANY"}}]}]})"),
     "/programs/s/rules/0/do/0/map_delete/flags",
     "unknown key \"flags\" (expected one of \"map\", \"key\")"},
    {"log not a string", with(kMaps, msg_prog(R"({"do": [{"log": 3}]})")),
     "/programs/p/rules/0/do/0/log", "expected a string, found a number"},
    // parsers
    {"parser without frame", with(kMaps, R"("f": {"type": "sk_skb/stream_parser"})"), "/programs/f",
     "missing required key \"frame\""},
    {"parser with rules",
     with(kMaps, R"("f": {"type": "sk_skb/stream_parser", "frame": "whole", "rules": []})"),
     "/programs/f/rules", "unknown key \"rules\" (expected one of \"type\", \"frame\")"},
    {"bad frame string", with(kMaps, R"("f": {"type": "sk_skb/stream_parser", "frame": "line"})"),
     "/programs/f/frame", "expected one of \"whole\""},
    {"two frame kinds",
     with(kMaps,
          R"("f": {"type": "sk_skb/stream_parser", "frame": {"fixed": 4, "delimiter": "\n"}})"),
     "/programs/f/frame",
     "expected exactly one of \"whole\", \"length_prefix\", \"delimiter\", \"fixed\""},
    {"length_prefix size 3",
     with(kMaps,
          R"("f": {"type": "sk_skb/stream_parser", "frame": {"length_prefix": {"size": 3}}})"),
     "/programs/f/frame/length_prefix/size", "expected 1, 2, 4 or 8"},
    {"bad endian",
     with(
         kMaps,
         R"("f": {"type": "sk_skb/stream_parser", "frame": {"length_prefix": {"endian": "network"}}})"),
     "/programs/f/frame/length_prefix/endian", "expected one of \"big\", \"little\""},
    {"empty delimiter",
     with(kMaps, R"("f": {"type": "sk_skb/stream_parser", "frame": {"delimiter": ""}})"),
     "/programs/f/frame/delimiter", "must not be empty"},
    {"fixed 0", with(kMaps, R"("f": {"type": "sk_skb/stream_parser", "frame": {"fixed": 0}})"),
     "/programs/f/frame/fixed", "expected an integer from 1 to 4294967295"},
    {"max 0",
     with(kMaps, R"("f": {"type": "sk_skb/stream_parser", "frame": {"fixed": 2, "max": 0}})"),
     "/programs/f/frame/max", "expected an integer from 1 to 4294967295"},
    // attach
    {"attach dangling program",
     with(kMaps, msg_prog(R"({"do": ["pass"]})"),
          R"([{"program": "q", "map": "sm", "attach_type": "BPF_SK_MSG_VERDICT"}])"),
     "/attach/0/program", "no program named \"q\""},
    {"attach dangling map",
     with(kMaps, msg_prog(R"({"do": ["pass"]})"),
          R"([{"program": "p", "map": "zz", "attach_type": "BPF_SK_MSG_VERDICT"}])"),
     "/attach/0/map", "no map named \"zz\""},
    {"attach to sk_storage",
     with(kMaps, msg_prog(R"({"do": ["pass"]})"),
          R"([{"program": "p", "map": "st", "attach_type": "BPF_SK_MSG_VERDICT"}])"),
     "/attach/0/map",
     "map \"st\" is a sk_storage: programs attach to a sockmap or sockhash (EOPNOTSUPP)"},
    {"attach type mismatch",
     with(kMaps, msg_prog(R"({"do": ["pass"]})"),
          R"([{"program": "p", "map": "sm", "attach_type": "BPF_SK_SKB_VERDICT"}])"),
     "/attach/0/attach_type", "program \"p\" is sk_msg: expected BPF_SK_MSG_VERDICT (EINVAL)"},
    {"parser as verdict",
     with(kMaps, R"("f": {"type": "sk_skb/stream_parser", "frame": "whole"})",
          R"([{"program": "f", "map": "sm", "attach_type": "BPF_SK_SKB_STREAM_VERDICT"}])"),
     "/attach/0/attach_type",
     "program \"f\" is sk_skb/stream_parser: expected BPF_SK_SKB_STREAM_PARSER (EINVAL)"},
    {"unknown attach type",
     with(kMaps, msg_prog(R"({"do": ["pass"]})"),
          R"([{"program": "p", "map": "sm", "attach_type": "BPF_CGROUP_SOCK_OPS"}])"),
     "/attach/0/attach_type",
     "expected one of \"BPF_SK_MSG_VERDICT\", \"BPF_SK_SKB_STREAM_PARSER\", "
     "\"BPF_SK_SKB_STREAM_VERDICT\", \"BPF_SK_SKB_VERDICT\""},
    {"stream_verdict and verdict on one map",
     with(
         kMaps,
         R"("v1": {"type": "sk_skb/stream_verdict", "rules": []}, "v2": {"type": "sk_skb/verdict", "rules": []})",
         R"([{"program": "v1", "map": "sh", "attach_type": "BPF_SK_SKB_STREAM_VERDICT"}, {"program": "v2", "map": "sh", "attach_type": "BPF_SK_SKB_VERDICT"}])"),
     "/attach/1/attach_type",
     "map \"sh\" already has BPF_SK_SKB_STREAM_VERDICT: BPF_SK_SKB_VERDICT and "
     "BPF_SK_SKB_STREAM_VERDICT exclude each other (EBUSY)"},
    {"same role twice",
     with(
         kMaps, R"("a": {"type": "sk_msg", "rules": []}, "b": {"type": "sk_msg", "rules": []})",
         R"([{"program": "a", "map": "sm", "attach_type": "BPF_SK_MSG_VERDICT"}, {"program": "b", "map": "sm", "attach_type": "BPF_SK_MSG_VERDICT"}])"),
     "/attach/1", "map \"sm\" already has \"a\" as BPF_SK_MSG_VERDICT"},
    {"attach sockops program",
     with(kMaps, R"("s": {"type": "sockops", "rules": []})",
          R"([{"program": "s", "map": "sm", "attach_type": "BPF_SK_MSG_VERDICT"}])"),
     "/attach/0/program",
     "program \"s\" is sockops: it runs from the \"sockops\" list, not from a map"},
    {"attach missing map key",
     with(kMaps, msg_prog(R"({"do": ["pass"]})"),
          R"([{"program": "p", "attach_type": "BPF_SK_MSG_VERDICT"}])"),
     "/attach/0", "missing required key \"map\""},
    // sockops list
    {"sockops dangling", with(kMaps, "", "[]", R"(["s"])"), "/sockops/0", "no program named \"s\""},
    {"sockops not sockops", with(kMaps, msg_prog(R"({"do": ["pass"]})"), "[]", R"(["p"])"),
     "/sockops/0", "program \"p\" is sk_msg, expected a sockops program"},
    {"sockops twice",
     with(kMaps, R"("s": {"type": "sockops", "rules": []})", "[]", R"(["s", "s"])"), "/sockops/1",
     "program \"s\" is already in the sockops list"},
    {"sockops not an array", with(kMaps, "", "[]", R"("s")"), "/sockops",
     "expected an array, found a string"},
    // syntax
    {"trailing comma", R"({"version": 1,})", "", "expected a string key"},
    {"unterminated string", R"({"version": 1, "maps": {"a)", "", "unterminated string"},
    {"text after value", R"({"version": 1} x)", "", "unexpected text after the JSON value"},
};

}  // namespace

TEST_CASE("each malformed policy gives its one error, pointer and message", "[policy][loader]") {
  for (const Case& c : kCases) {
    INFO("case: " << c.name);
    const auto r = load_policy_text(c.text);
    REQUIRE_FALSE(r.ok());
    REQUIRE(r.errors.size() == 1);
    CHECK(r.errors[0].pointer == c.pointer);
    CHECK(r.errors[0].message == c.message);
    CHECK(r.errors[0].line >= 1);
    CHECK(r.errors[0].column >= 1);
  }
  CHECK(std::size(kCases) >= 40);
}

TEST_CASE("errors carry the line and column of the offending value", "[policy][loader]") {
  const std::string text =
      "{\n"
      "  \"version\": 1,\n"
      "  \"maps\": {\n"
      "    \"m\": { \"type\": \"hashmap\", \"max_entries\": 0 }\n"
      "  },\n"
      "  \"extra\": true\n"
      "}\n";
  const auto r = load_policy_text(text);
  REQUIRE(r.errors.size() == 2);
  CHECK(r.errors[0].format("p.json") ==
        "p.json:4:20: /maps/m/type: expected one of \"sockmap\", \"sockhash\", \"sk_storage\"");
  CHECK(r.errors[1].format("p.json") ==
        "p.json:6:3: /extra: unknown key \"extra\" (expected one of \"version\", \"maps\", "
        "\"programs\", \"attach\", \"sockops\")");
}

TEST_CASE("all errors are collected in one pass", "[policy][loader]") {
  const std::string text = with(
      R"("a": {"type": "sockmap", "max_entries": 0}, "b": {"type": "sk_storage", "value": {"n": "u64"}})",
      R"("p": {"type": "sk_msg", "rules": [{"if": {"local_port": "x"}, "do": [{"redirect": {"map": "nope", "key": 0}}]}]})",
      R"([{"program": "p", "map": "a", "attach_type": "BPF_SK_SKB_VERDICT"}])", R"(["ghost"])");
  const auto r = load_policy_text(text);
  REQUIRE(r.errors.size() == 5);
  CHECK(r.errors[0].pointer == "/maps/a/max_entries");
  CHECK(r.errors[1].pointer == "/maps/b");
  CHECK(r.errors[2].pointer == "/programs/p/rules/0/if/local_port");
  CHECK(r.errors[3].pointer == "/programs/p/rules/0/do/0/redirect/map");
  // The attach names a broken map and a broken program: no cascade.
  CHECK(r.errors[4].pointer == "/sockops/0");
}

TEST_CASE("a syntax error reports its position and stops", "[policy][loader]") {
  const auto r = load_policy_text("{\n  \"version\": 1,\n  \"maps\": {]\n}");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].format("x") == "x:3:12: expected a string key");
}

TEST_CASE("an unreadable file is one error", "[policy][loader]") {
  const auto r = sockshim::policy::load_policy_file("/nonexistent/policy.json");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].format("/nonexistent/policy.json") ==
        "cannot read policy /nonexistent/policy.json: No such file or directory");
}

TEST_CASE("a policy path that is not a regular file has one message", "[policy][loader]") {
  std::string text;
  CHECK(sockshim::policy::read_policy_file("/", &text) == "Is a directory");
  CHECK(sockshim::policy::read_policy_file("/dev/null", &text) == "not a regular file");
  const auto r = sockshim::policy::load_policy_file("/");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].format("/") == "cannot read policy /: Is a directory");
}
