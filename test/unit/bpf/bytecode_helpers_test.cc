// The bytecode backend's helpers, one behaviour each, on hand-assembled
// programs run through policy::Program against FakeKernel: the return values
// and errnos of the kernel's helpers, and the faults where its verifier would
// have refused the program.
#include <arpa/inet.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "policy/bytecode_program.h"
#include "policy/policy.h"
#include "test/unit/bpf/bpf_asm.h"
#include "tools/fake_kernel.h"

using namespace bpf_asm;
using namespace sockshim;
using policy::ProgramType;

namespace {

// Maps 0 redir (sockmap), 1 hash (sockhash), 2 st (sk_storage); a program
// refers to map i as fd 100 + i.
const char* kPolicy = R"({"version": 1, "maps": {
    "redir": {"type": "sockmap", "max_entries": 4},
    "hash": {"type": "sockhash", "max_entries": 4, "key": ["local_ip4", "local_port"]},
    "st": {"type": "sk_storage", "flags": ["BPF_F_NO_PREALLOC"], "value": {"n": "u64"}}},
  "programs": {}, "attach": []})";
constexpr int kRedir = 100, kHash = 101, kStorage = 102;

struct World {
  std::unique_ptr<policy::Policy> policy;
  std::unique_ptr<policy::FakeKernel> kernel;
  policy::SocketTuple sk;
  World() {
    policy::LoadResult r = policy::load_policy_text(kPolicy);
    REQUIRE(r.ok());
    policy = std::move(r.policy);
    kernel = std::make_unique<policy::FakeKernel>(*policy);
    sk.family = AF_INET;
    sk.local_ip4 = htonl(0x7f000001);
    sk.local_port = 6379;
  }
};

std::unique_ptr<policy::Program> load(ProgramType type, const std::vector<bpf_insn>& insns) {
  auto resolve = [](uint8_t pseudo, int32_t fd, uint32_t, bpf::MapRef* r) {
    if (pseudo != BPF_PSEUDO_MAP_FD || fd < 100 || fd > 102) return -EBADF;
    r->value = static_cast<uint64_t>(fd - 100);
    return 0;
  };
  std::unique_ptr<policy::Program> p;
  std::string log;
  const int rc = policy::load_bytecode_program("p", type, insns, resolve, &p, &log);
  INFO(log);
  REQUIRE(rc == 0);
  return p;
}

// r1 = ctx (saved in r6), then body, then exit with r0.
std::vector<bpf_insn> prog(const std::vector<bpf_insn>& body) {
  std::vector<bpf_insn> p = {MOV64_REG(6, 1)};
  p.insert(p.end(), body.begin(), body.end());
  p.push_back(EXIT());
  return p;
}

std::vector<bpf_insn> map_ref(uint8_t reg, int fd) {
  std::vector<bpf_insn> p;
  LD_IMM64(p, reg, static_cast<uint64_t>(fd), BPF_PSEUDO_MAP_FD);
  return p;
}

std::vector<bpf_insn> cat(std::initializer_list<std::vector<bpf_insn>> parts) {
  std::vector<bpf_insn> out;
  for (const auto& x : parts) out.insert(out.end(), x.begin(), x.end());
  return out;
}

policy::RunResult run_msg(World& w, const policy::Program& p, const std::string& bytes) {
  policy::SkMsg msg(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  return p.run_msg(msg, w.sk, *w.kernel);
}

policy::RunResult run_skb(World& w, const policy::Program& p, const std::string& bytes) {
  return p.run_skb(std::span(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()), w.sk,
                   *w.kernel);
}

}  // namespace

TEST_CASE("bytecode helpers: msg_redirect_map flags and map type", "[bytecode][helpers]") {
  World w;
  auto redirect = [&](int fd, int32_t flags) {
    return load(ProgramType::sk_msg, prog(cat({{MOV64_REG(1, 6)},
                                               map_ref(2, fd),
                                               {MOV64_IMM(3, 0), MOV64_IMM(4, flags),
                                                CALL_HELPER(BPF_FUNC_msg_redirect_map)}})));
  };
  auto ingress = redirect(kRedir, BPF_F_INGRESS);
  policy::RunResult r = run_msg(w, *ingress, "x");
  CHECK(r.ret == policy::SK_PASS);
  CHECK(r.verdict == policy::Verdict::redirect);
  REQUIRE(w.kernel->redirect_target());
  CHECK(w.kernel->redirect_target()->flags == BPF_F_INGRESS);

  w.kernel->reset_run();
  auto bad_flag = redirect(kRedir, 2);
  r = run_msg(w, *bad_flag, "x");
  CHECK(r.ret == policy::SK_DROP);
  CHECK(r.verdict == policy::Verdict::drop);
  CHECK_FALSE(w.kernel->redirect_target());
  CHECK(bad_flag->faults() == 0);

  auto wrong_map = redirect(kHash, 0);  // a sockhash for the _map helper
  r = run_msg(w, *wrong_map, "x");
  CHECK(r.verdict == policy::Verdict::drop);
  CHECK(wrong_map->faults() == 1);
}

TEST_CASE("bytecode helpers: a value that is not a referenced map faults", "[bytecode][helpers]") {
  World w;
  auto p =
      load(ProgramType::sk_msg, prog({MOV64_REG(1, 6), MOV64_IMM(2, 0), MOV64_IMM(3, 0),
                                      MOV64_IMM(4, 0), CALL_HELPER(BPF_FUNC_msg_redirect_map)}));
  CHECK(run_msg(w, *p, "x").ret == policy::SK_DROP);
  CHECK(p->faults() == 1);
  // Faults keep being counted; the log line is written once.
  CHECK(run_msg(w, *p, "x").ret == policy::SK_DROP);
  CHECK(p->faults() == 2);
  REQUIRE(w.kernel->log_lines().size() == 1);
  CHECK(w.kernel->log_lines()[0].find("p: bytecode fault at insn 5: helper fault") == 0);
}

TEST_CASE("bytecode helpers: map_lookup_elem on a sock map faults", "[bytecode][helpers]") {
  World w;
  auto p = load(ProgramType::sk_msg,
                prog(cat({map_ref(1, kRedir),
                          {ST_MEM(BPF_W, 10, -4, 0), MOV64_REG(2, 10), ALU64_IMM(BPF_ADD, 2, -4),
                           CALL_HELPER(BPF_FUNC_map_lookup_elem), MOV64_IMM(0, 1)}})));
  CHECK(run_msg(w, *p, "x").ret == policy::SK_DROP);
  CHECK(p->faults() == 1);
}

TEST_CASE("bytecode helpers: sock_hash_update only in established and listen ops",
          "[bytecode][helpers]") {
  World w;
  // key {local_ip4, local_port} on the stack, then the update; r0 into the
  // socket's storage so the test can see it.
  auto p = load(
      ProgramType::sockops,
      prog(cat({{LDX_MEM(BPF_W, 2, 6, offsetof(bpf_sock_ops, local_ip4)), STX_MEM(BPF_W, 10, 2, -8),
                 LDX_MEM(BPF_W, 2, 6, offsetof(bpf_sock_ops, local_port)),
                 STX_MEM(BPF_W, 10, 2, -4), MOV64_REG(1, 6)},
                map_ref(2, kHash),
                {MOV64_REG(3, 10), ALU64_IMM(BPF_ADD, 3, -8), MOV64_IMM(4, BPF_NOEXIST),
                 CALL_HELPER(BPF_FUNC_sock_hash_update), MOV64_REG(7, 0)},
                map_ref(1, kStorage),
                {LDX_MEM(BPF_DW, 2, 6, offsetof(bpf_sock_ops, sk)), MOV64_IMM(3, 0),
                 MOV64_IMM(4, BPF_SK_STORAGE_GET_F_CREATE), CALL_HELPER(BPF_FUNC_sk_storage_get),
                 JMP_IMM(BPF_JEQ, 0, 0, 1), STX_MEM(BPF_DW, 0, 7, 0), MOV64_IMM(0, 1)}})));
  auto result = [&] {
    uint64_t v;
    memcpy(&v, w.kernel->storage(2)->data(), 8);
    return static_cast<int64_t>(v);
  };
  w.kernel->clear_map(1);
  p->run_sockops(policy::SockOp::tcp_connect, w.sk, *w.kernel);
  CHECK(result() == -EOPNOTSUPP);
  CHECK(w.kernel->entries(1).empty());
  p->run_sockops(policy::SockOp::active_established, w.sk, *w.kernel);
  CHECK(result() == 0);
  CHECK(w.kernel->entries(1).size() == 1);
  p->run_sockops(policy::SockOp::passive_established, w.sk, *w.kernel);
  CHECK(result() == -EEXIST);  // BPF_NOEXIST
  CHECK(p->faults() == 0);
}

TEST_CASE("bytecode helpers: msg data helpers return the kernel's errnos", "[bytecode][helpers]") {
  World w;
  auto call = [&](int32_t helper, int32_t a, int32_t b, int32_t flags) {
    return load(ProgramType::sk_msg, prog({MOV64_REG(1, 6), MOV64_IMM(2, a), MOV64_IMM(3, b),
                                           MOV64_IMM(4, flags), CALL_HELPER(helper)}));
  };
  CHECK(run_msg(w, *call(BPF_FUNC_msg_pull_data, 3, 2, 0), "hello").ret == -EINVAL);
  CHECK(run_msg(w, *call(BPF_FUNC_msg_pull_data, 1, 2, 1), "hello").ret == -EINVAL);
  CHECK(run_msg(w, *call(BPF_FUNC_msg_pull_data, 1, 2, 0), "hello").ret == 0);
  CHECK(run_msg(w, *call(BPF_FUNC_msg_push_data, 6, 1, 0), "hello").ret == -EINVAL);
  CHECK(run_msg(w, *call(BPF_FUNC_msg_pop_data, 4, 2, 0), "hello").ret == -EINVAL);
  CHECK(run_msg(w, *call(BPF_FUNC_msg_apply_bytes, 3, 0, 0), "hello").ret == 0);
  // After a push, md->size and data_end follow: return size + (data_end - data).
  auto sizes = load(
      ProgramType::sk_msg,
      prog({MOV64_REG(1, 6), MOV64_IMM(2, 0), MOV64_IMM(3, 3), MOV64_IMM(4, 0),
            CALL_HELPER(BPF_FUNC_msg_push_data), LDX_MEM(BPF_W, 0, 6, offsetof(sk_msg_md, size)),
            LDX_MEM(BPF_DW, 2, 6, offsetof(sk_msg_md, data)),
            LDX_MEM(BPF_DW, 3, 6, offsetof(sk_msg_md, data_end)), ALU64_REG(BPF_SUB, 3, 2),
            ALU64_REG(BPF_ADD, 0, 3)}));
  CHECK(run_msg(w, *sizes, "hello").ret == 16);
}

TEST_CASE("bytecode helpers: skb_load_bytes and skb_pull_data", "[bytecode][helpers]") {
  World w;
  // load_bytes(skb, off, fp - 8, 4) over a stack word of 0xffffffff; returns
  // r0, or 99 when the bytes were not zeroed after a failure.
  auto load_at = [&](int32_t off) {
    return load(
        ProgramType::skb_verdict,
        prog({ST_MEM(BPF_W, 10, -8, -1), MOV64_REG(1, 6), MOV64_IMM(2, off), MOV64_REG(3, 10),
              ALU64_IMM(BPF_ADD, 3, -8), MOV64_IMM(4, 4), CALL_HELPER(BPF_FUNC_skb_load_bytes),
              JMP_IMM(BPF_JEQ, 0, 0, 4), LDX_MEM(BPF_W, 2, 10, -8), JMP_IMM(BPF_JEQ, 2, 0, 1),
              MOV64_IMM(0, 99), JMP_A(1), LDX_MEM(BPF_W, 0, 10, -8)}));
  };
  uint32_t word;
  memcpy(&word, "bcde", 4);
  CHECK(static_cast<uint32_t>(run_skb(w, *load_at(1), "abcdef").ret) == word);
  CHECK(run_skb(w, *load_at(3), "abcdef").ret == -EFAULT);
  auto pull = [&](int32_t len) {
    return load(ProgramType::skb_verdict,
                prog({MOV64_REG(1, 6), MOV64_IMM(2, len), CALL_HELPER(BPF_FUNC_skb_pull_data)}));
  };
  CHECK(run_skb(w, *pull(6), "abcdef").ret == 0);
  CHECK(run_skb(w, *pull(0), "abcdef").ret == 0);
  CHECK(run_skb(w, *pull(7), "abcdef").ret == -ENOMEM);
  auto cookie = load(ProgramType::skb_verdict,
                     prog({MOV64_REG(1, 6), CALL_HELPER(BPF_FUNC_get_socket_cookie)}));
  CHECK(static_cast<uint64_t>(run_skb(w, *cookie, "a").ret) == policy::FakeKernel::kSelfCookie);
}

TEST_CASE("bytecode helpers: sk_storage_get flags, init value, other sockets",
          "[bytecode][helpers]") {
  World w;
  // get(st, sk or 0, fp - 8 = 42, flags); returns *value or 77 for NULL.
  auto get = [&](int32_t flags, bool own_sk) {
    return load(
        ProgramType::sk_msg,
        prog(cat({{ST_MEM(BPF_DW, 10, -8, 42)},
                  map_ref(1, kStorage),
                  {own_sk ? LDX_MEM(BPF_DW, 2, 6, offsetof(sk_msg_md, sk)) : MOV64_IMM(2, 8),
                   MOV64_REG(3, 10), ALU64_IMM(BPF_ADD, 3, -8), MOV64_IMM(4, flags),
                   CALL_HELPER(BPF_FUNC_sk_storage_get), JMP_IMM(BPF_JNE, 0, 0, 2),
                   MOV64_IMM(0, 77), JMP_A(1), LDX_MEM(BPF_DW, 0, 0, 0)}})));
  };
  CHECK(run_msg(w, *get(2, true), "x").ret == 77);
  CHECK(run_msg(w, *get(0, true), "x").ret == 77);  // none yet, no create
  CHECK(run_msg(w, *get(BPF_SK_STORAGE_GET_F_CREATE, false), "x").ret == 77);
  CHECK(run_msg(w, *get(BPF_SK_STORAGE_GET_F_CREATE, true), "x").ret == 42);
  CHECK(run_msg(w, *get(0, true), "x").ret == 42);
  auto del = load(ProgramType::sk_msg, prog(cat({map_ref(1, kStorage),
                                                 {LDX_MEM(BPF_DW, 2, 6, offsetof(sk_msg_md, sk)),
                                                  CALL_HELPER(BPF_FUNC_sk_storage_delete)}})));
  CHECK(run_msg(w, *del, "x").ret == 0);
  CHECK(run_msg(w, *del, "x").ret == -ENOENT);
}

TEST_CASE("bytecode helpers: trace_printk formats to the log", "[bytecode][helpers]") {
  World w;
  // The format as 8-byte words on the stack from fp - 16, fmt_size n.
  auto printk = [&](const char(&fmt)[17], int32_t n, int32_t a1) {
    int32_t words[4];
    memcpy(words, fmt, 16);
    return load(
        ProgramType::sk_msg,
        prog({ST_MEM(BPF_W, 10, -16, words[0]), ST_MEM(BPF_W, 10, -12, words[1]),
              ST_MEM(BPF_W, 10, -8, words[2]), ST_MEM(BPF_W, 10, -4, words[3]), MOV64_REG(1, 10),
              ALU64_IMM(BPF_ADD, 1, -16), MOV64_IMM(2, n), MOV64_IMM(3, a1), MOV64_IMM(4, 255),
              MOV64_IMM(5, -1), CALL_HELPER(BPF_FUNC_trace_printk)}));
  };
  CHECK(run_msg(w, *printk("n=%d %03x %u\n\0\0\0", 16, -5), "x").ret == 20);
  REQUIRE(w.kernel->log_lines().size() == 1);
  CHECK(w.kernel->log_lines()[0] == "p: n=-5 0ff 4294967295");
  CHECK(run_msg(w, *printk("%lld %c\0\0\0\0\0\0\0\0\0", 16, 'A'), "x").ret == 4);
  CHECK(w.kernel->log_lines().back() == "p: 65 \xff");
  CHECK(run_msg(w, *printk("no NUL in size..", 8, 0), "x").ret == -EINVAL);
  CHECK(run_msg(w, *printk("%q\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16, 0), "x").ret == -EINVAL);
  CHECK(run_msg(w, *printk("%d%d%d%d\0\0\0\0\0\0\0\0", 16, 0), "x").ret == -EINVAL);
  CHECK(w.kernel->log_lines().size() == 2);
}

TEST_CASE("bytecode helpers: sock map update and delete as may_update_sockmap allows",
          "[bytecode][helpers]") {
  World w;
  // helper(redir, fp - 4 = key 0, r3 = ctx->sk, 0)
  auto call = [&](int32_t helper, int16_t sk_off) {
    return cat({{ST_MEM(BPF_W, 10, -4, 0)},
                map_ref(1, kRedir),
                {MOV64_REG(2, 10), ALU64_IMM(BPF_ADD, 2, -4), LDX_MEM(BPF_DW, 3, 6, sk_off),
                 MOV64_IMM(4, 0), CALL_HELPER(helper)}});
  };
  auto update =
      load(ProgramType::sk_msg, prog(call(BPF_FUNC_map_update_elem, offsetof(sk_msg_md, sk))));
  CHECK(run_msg(w, *update, "x").ret == policy::SK_DROP);
  CHECK(update->faults() == 1);
  auto del_msg =
      load(ProgramType::sk_msg, prog(call(BPF_FUNC_map_delete_elem, offsetof(sk_msg_md, sk))));
  CHECK(run_msg(w, *del_msg, "x").ret == policy::SK_DROP);
  CHECK(del_msg->faults() == 1);
  // sockops may delete: -EINVAL for an empty sockmap slot; r0 into storage.
  auto del_ops = load(
      ProgramType::sockops,
      prog(cat({call(BPF_FUNC_map_delete_elem, offsetof(bpf_sock_ops, sk)),
                {MOV64_REG(7, 0)},
                map_ref(1, kStorage),
                {LDX_MEM(BPF_DW, 2, 6, offsetof(bpf_sock_ops, sk)), MOV64_IMM(3, 0),
                 MOV64_IMM(4, BPF_SK_STORAGE_GET_F_CREATE), CALL_HELPER(BPF_FUNC_sk_storage_get),
                 JMP_IMM(BPF_JEQ, 0, 0, 1), STX_MEM(BPF_DW, 0, 7, 0), MOV64_IMM(0, 1)}})));
  w.kernel->clear_map(0);
  del_ops->run_sockops(policy::SockOp::active_established, w.sk, *w.kernel);
  CHECK(del_ops->faults() == 0);
  uint64_t v;
  memcpy(&v, w.kernel->storage(2)->data(), 8);
  CHECK(static_cast<int64_t>(v) == -EINVAL);
}
