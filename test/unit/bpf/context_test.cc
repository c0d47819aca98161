// The contexts as the bytecode backend fills them, through policy::Program
// against FakeKernel: `struct bpf_sock` behind ctx->sk with the kernel's
// byte orders and narrow-load rules, context fields read through a copied
// pointer, and the sk_skb frame a verdict program may rewrite (direct writes
// and bpf_skb_store_bytes with the kernel's errnos).
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <memory>
#include <span>
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

struct World {
  std::unique_ptr<policy::Policy> policy;
  std::unique_ptr<policy::FakeKernel> kernel;
  policy::SocketTuple sk;
  World() {
    policy::LoadResult r =
        policy::load_policy_text(R"({"version": 1, "maps": {}, "programs": {}, "attach": []})");
    REQUIRE(r.ok());
    policy = std::move(r.policy);
    kernel = std::make_unique<policy::FakeKernel>(*policy);
    sk.family = AF_INET;
    sk.type = SOCK_STREAM;
    sk.local_ip4 = htonl(0x7f000001);
    sk.remote_ip4 = htonl(0x7f000002);
    sk.local_port = 6379;
    sk.remote_port = 40000;
  }
};

std::unique_ptr<policy::Program> load(ProgramType type, const std::vector<bpf_insn>& insns) {
  std::unique_ptr<policy::Program> p;
  std::string log;
  const int rc = policy::load_bytecode_program("p", type, insns, {}, &p, &log);
  INFO(log);
  REQUIRE(rc == 0);
  return p;
}

int16_t sk_field(ProgramType t) {
  switch (t) {
    case ProgramType::sk_msg:
      return offsetof(sk_msg_md, sk);
    case ProgramType::sockops:
      return offsetof(bpf_sock_ops, sk);
    default:
      return offsetof(__sk_buff, sk);
  }
}

// r0 = the `size` bytes at `off` of *ctx->sk.
std::unique_ptr<policy::Program> sock_load(ProgramType t, uint8_t size, int16_t off) {
  return load(t, {LDX_MEM(BPF_DW, 2, 1, sk_field(t)), LDX_MEM(size, 0, 2, off), EXIT()});
}

struct Ran {
  uint32_t r0;
  uint64_t faults;
};

Ran run(World& w, ProgramType t, const policy::Program& p) {
  policy::RunResult r;
  if (t == ProgramType::sk_msg) {
    policy::SkMsg msg(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>("x"), 1));
    r = p.run_msg(msg, w.sk, *w.kernel);
  } else if (t == ProgramType::sockops) {
    // A sockops run's return is not used: the value comes back in reply.
    r = p.run_sockops(policy::SockOp::passive_established, w.sk, *w.kernel);
  } else {
    std::string frame = "abc";
    r = p.run_skb(std::span(reinterpret_cast<uint8_t*>(frame.data()), frame.size()), w.sk,
                  *w.kernel);
  }
  return {static_cast<uint32_t>(r.ret), p.faults()};
}

uint32_t value(World& w, ProgramType t, uint8_t size, int16_t off) {
  auto p = sock_load(t, size, off);
  const Ran r = run(w, t, *p);
  CHECK(r.faults == 0);
  return r.r0;
}

bool faults(World& w, ProgramType t, uint8_t size, int16_t off) {
  auto p = sock_load(t, size, off);
  return run(w, t, *p).faults == 1;
}

}  // namespace

TEST_CASE("ctx->sk: struct bpf_sock with the kernel's byte orders", "[bytecode][context]") {
  World w;
  for (ProgramType t : {ProgramType::sk_msg, ProgramType::skb_verdict}) {
    INFO(policy::program_type_name(t));
    CHECK(value(w, t, BPF_W, offsetof(bpf_sock, family)) == AF_INET);
    CHECK(value(w, t, BPF_W, offsetof(bpf_sock, src_port)) == 6379);  // host order
    // dst_port: the network-order port in the low 16 bits of a 4-byte load.
    CHECK(value(w, t, BPF_W, offsetof(bpf_sock, dst_port)) == htons(40000));
    CHECK(value(w, t, BPF_H, offsetof(bpf_sock, dst_port)) == htons(40000));
    CHECK(value(w, t, BPF_B, offsetof(bpf_sock, dst_port) + 1) == (40000 & 0xff));
    CHECK(value(w, t, BPF_W, offsetof(bpf_sock, src_ip4)) == htonl(0x7f000001));
    CHECK(value(w, t, BPF_B, offsetof(bpf_sock, dst_ip4) + 3) == 2);
    CHECK(value(w, t, BPF_W, offsetof(bpf_sock, state)) == BPF_TCP_ESTABLISHED);
    CHECK(value(w, t, BPF_W, offsetof(bpf_sock, rx_queue_mapping)) == UINT32_MAX);
    CHECK(value(w, t, BPF_W, offsetof(bpf_sock, bound_dev_if)) == 0);
  }
  CHECK(value(w, ProgramType::sk_msg, BPF_W, offsetof(bpf_sock, type)) == SOCK_STREAM);
  CHECK(value(w, ProgramType::sk_msg, BPF_B, offsetof(bpf_sock, protocol)) == IPPROTO_TCP);
  CHECK(value(w, ProgramType::sk_msg, BPF_W, offsetof(bpf_sock, mark)) == 0);
}

TEST_CASE("ctx->sk: loads the kernel refuses fault", "[bytecode][context]") {
  World w;
  const auto msg = ProgramType::sk_msg;
  CHECK(faults(w, msg, BPF_B, offsetof(bpf_sock, dst_port) + 2));  // the padding
  CHECK(faults(w, msg, BPF_H, offsetof(bpf_sock, family) + 2));    // narrow: at the start only
  CHECK(faults(w, msg, BPF_H, offsetof(bpf_sock, mark)));          // 4 bytes only
  CHECK(faults(w, msg, BPF_DW, offsetof(bpf_sock, src_ip6)));
  CHECK(faults(w, msg, BPF_W, sizeof(bpf_sock)));  // past the end
  // sk_skb's ctx->sk is a sock_common: no type, protocol, mark, priority.
  CHECK(faults(w, ProgramType::skb_verdict, BPF_W, offsetof(bpf_sock, type)));
  CHECK(faults(w, ProgramType::skb_verdict, BPF_W, offsetof(bpf_sock, priority)));
  // Read only.
  auto store = load(msg, {LDX_MEM(BPF_DW, 2, 1, offsetof(sk_msg_md, sk)), MOV64_IMM(3, 1),
                          STX_MEM(BPF_W, 2, 3, offsetof(bpf_sock, mark)), MOV64_IMM(0, 1), EXIT()});
  CHECK(run(w, msg, *store).faults == 1);
}

TEST_CASE("ctx->sk in sockops: the op's state", "[bytecode][context]") {
  World w;
  // A sockops run's return value is not used: the program faults (a load at
  // address 0) unless the field has the value expected.
  auto expect = [&](int16_t off, int32_t v) {
    auto p = load(ProgramType::sockops,
                  {LDX_MEM(BPF_DW, 2, 1, offsetof(bpf_sock_ops, sk)), LDX_MEM(BPF_W, 0, 2, off),
                   JMP_IMM(BPF_JEQ, 0, v, 1), LDX_MEM(BPF_W, 0, 0, 0), EXIT()});
    return run(w, ProgramType::sockops, *p).faults == 0;
  };
  CHECK(expect(offsetof(bpf_sock, state), BPF_TCP_ESTABLISHED));  // passive_established
  CHECK(expect(offsetof(bpf_sock, src_port), 6379));
  CHECK_FALSE(expect(offsetof(bpf_sock, src_port), 6380));
}

TEST_CASE("sk_msg context fields read through a copied pointer", "[bytecode][context]") {
  World w;
  // The backend fills up front only the fields loaded through r1; a moved
  // copy reaches the others all the same.
  const int16_t lp = offsetof(sk_msg_md, local_port), rp = offsetof(sk_msg_md, remote_port);
  auto p =
      load(ProgramType::sk_msg,
           {LDX_MEM(BPF_W, 3, 1, lp), MOV64_REG(2, 1), ALU64_IMM(BPF_ADD, 2, 8),
            LDX_MEM(BPF_W, 0, 2, static_cast<int16_t>(rp - 8)), ALU64_REG(BPF_ADD, 0, 3), EXIT()});
  const Ran r = run(w, ProgramType::sk_msg, *p);
  CHECK(r.faults == 0);
  CHECK(r.r0 == htonl(40000) + 6379);
}

namespace {

// The sk_skb frame: r2 = data, r3 = data_end, r6 = ctx.
std::vector<bpf_insn> with_frame(const std::vector<bpf_insn>& body) {
  std::vector<bpf_insn> p = {MOV64_REG(6, 1), LDX_MEM(BPF_W, 2, 1, offsetof(__sk_buff, data)),
                             LDX_MEM(BPF_W, 3, 1, offsetof(__sk_buff, data_end))};
  p.insert(p.end(), body.begin(), body.end());
  p.push_back(EXIT());
  return p;
}

// store_bytes(skb, off, fp - 1 = 'Z', len, flags)
std::unique_ptr<policy::Program> store(int32_t off, int32_t len, int32_t flags) {
  return load(ProgramType::skb_verdict,
              with_frame({ST_MEM(BPF_B, 10, -1, 'Z'), MOV64_REG(1, 6), MOV64_IMM(2, off),
                          MOV64_REG(3, 10), ALU64_IMM(BPF_ADD, 3, -1), MOV64_IMM(4, len),
                          MOV64_IMM(5, flags), CALL_HELPER(BPF_FUNC_skb_store_bytes)}));
}

struct SkbRun {
  policy::RunResult r;
  std::string frame;
};

SkbRun run_frame(World& w, const policy::Program& p, std::string frame, bool writable = true) {
  SkbRun out;
  if (writable)
    out.r = p.run_skb(std::span(reinterpret_cast<uint8_t*>(frame.data()), frame.size()), w.sk,
                      *w.kernel);
  else
    out.r = p.run_skb(std::span(reinterpret_cast<const uint8_t*>(frame.data()), frame.size()), w.sk,
                      *w.kernel);
  out.frame = frame;
  return out;
}

}  // namespace

TEST_CASE("sk_skb verdict: direct writes to a writable frame", "[bytecode][context]") {
  World w;
  // if (data + 1 <= data_end) data[0] = 'Q'; return SK_PASS
  auto p = load(ProgramType::skb_verdict,
                with_frame({MOV64_REG(4, 2), ALU64_IMM(BPF_ADD, 4, 1), JMP_REG(BPF_JGT, 4, 3, 1),
                            ST_MEM(BPF_B, 2, 0, 'Q'), MOV64_IMM(0, SK_PASS)}));
  SkbRun r = run_frame(w, *p, "abc");
  CHECK(r.r.verdict == policy::Verdict::pass);
  CHECK(r.frame == "Qbc");
  CHECK(p->faults() == 0);
  // A frame handed over read only: the write faults, the run drops.
  r = run_frame(w, *p, "abc", false);
  CHECK(r.r.verdict == policy::Verdict::drop);
  CHECK(r.frame == "abc");
  CHECK(p->faults() == 1);
}

TEST_CASE("bpf_skb_store_bytes: bytes and errnos", "[bytecode][context]") {
  World w;
  SkbRun r = run_frame(w, *store(1, 1, 0), "abc");
  CHECK(r.r.ret == 0);
  CHECK(r.frame == "aZc");
  r = run_frame(w, *store(2, 1, BPF_F_RECOMPUTE_CSUM | BPF_F_INVALIDATE_HASH), "abc");
  CHECK(r.r.ret == 0);
  CHECK(r.frame == "abZ");
  CHECK(run_frame(w, *store(0, 1, 4), "abc").r.ret == -EINVAL);          // unknown flag
  CHECK(run_frame(w, *store(3, 1, 0), "abc").r.ret == -EFAULT);          // past the end
  CHECK(run_frame(w, *store(INT32_MIN, 1, 0), "abc").r.ret == -EFAULT);  // offset > INT_MAX
  CHECK(run_frame(w, *store(0, 1, 0), "abc", false).r.ret == -EFAULT);   // read-only frame
  auto zero = store(0, 0, 0);  // ARG_CONST_SIZE: the verifier refuses 0
  CHECK(run_frame(w, *zero, "abc").r.verdict == policy::Verdict::drop);
  CHECK(zero->faults() == 1);
}
