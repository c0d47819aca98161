// Random bytecode through the check; what passes runs on a random context,
// packet and helper answers. No crash, and (under ASan) no access outside the
// regions: the context, packet, map values and global data are separate heap
// blocks of their exact size, so any escape from the bounds checks shows.
//
// Input: [0] program type, [1] packet length, [2] helper behaviour,
// then the context struct's bytes, then the packet, then instructions.
#include <linux/bpf.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bpf/check.h"
#include "bpf/vm.h"

namespace {

using namespace sockshim::bpf;

constexpr size_t kMaxFuzzInsns = 512;
constexpr uint64_t kMap = 0x5000;  // the one map handle lddw of a map fd yields

struct Heap {
  std::unique_ptr<uint8_t[]> value = std::make_unique<uint8_t[]>(16);  // a map value
  std::unique_ptr<uint8_t[]> data = std::make_unique<uint8_t[]>(24);   // global data
  uint8_t mode = 0;
};
Heap* g_heap;

// bpf_map_lookup_elem: reads the key, returns the value or NULL.
uint64_t lookup(Vm& vm, uint64_t map, uint64_t key, uint64_t, uint64_t, uint64_t) {
  const uint8_t* k = vm.mem(key, 4, false);
  if (!k || !vm.uses_map(map)) {
    vm.fault();
    return 0;
  }
  if (k[0] & 1) return 0;
  vm.add_region(g_heap->value.get(), 16, !(g_heap->mode & 1));
  return reinterpret_cast<uint64_t>(g_heap->value.get());
}

// A helper writing into program memory (like skb_load_bytes): r2 = to, r3 = len.
uint64_t load_bytes(Vm& vm, uint64_t, uint64_t, uint64_t to, uint64_t len, uint64_t) {
  uint8_t* p = len && len <= 64 ? vm.mem(to, len, true) : nullptr;
  if (!p) return static_cast<uint64_t>(-14);
  memset(p, 0xab, len);
  return 0;
}

// A helper changing the packet (like msg_pull_data): shrinks it from the end.
uint64_t pull(Vm& vm, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t) {
  const RunInput& in = vm.input();
  const uint64_t lo = in.ctx_ptrs[kSlotData], hi = in.ctx_ptrs[kSlotDataEnd];
  if (hi > lo) vm.set_packet(lo, hi - 1);
  return 0;
}

uint64_t constant(Vm& vm, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t) {
  return g_heap->mode & 2 ? 1 : reinterpret_cast<uint64_t>(vm.user());
}

const HelperTable& helpers() {
  static const HelperTable t = [] {
    HelperTable t;
    t.fn[BPF_FUNC_map_lookup_elem] = lookup;
    t.fn[BPF_FUNC_skb_load_bytes] = load_bytes;
    t.fn[BPF_FUNC_msg_pull_data] = pull;
    t.fn[BPF_FUNC_ktime_get_ns] = constant;
    t.fn[BPF_FUNC_get_prandom_u32] = constant;
    t.fn[BPF_FUNC_sock_map_update] = constant;
    return t;
  }();
  return t;
}

int resolve(uint8_t pseudo, int32_t fd, uint32_t off, MapRef* r) {
  if (fd != 3) return -EBADF;
  if (pseudo == BPF_PSEUDO_MAP_FD) {
    r->value = kMap;
    return 0;
  }
  if (pseudo != BPF_PSEUDO_MAP_VALUE || off >= 24) return -EINVAL;
  const auto base = reinterpret_cast<uint64_t>(g_heap->data.get());
  *r = {base + off, base, 24, !(g_heap->mode & 4)};
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* in, size_t size) {
  static Vm* vm = new Vm;
  if (size < 3) return 0;
  Heap heap;
  g_heap = &heap;
  const auto type = static_cast<ProgType>(in[0] % 3);
  const size_t pkt_len = in[1] % 65;
  heap.mode = in[2];
  in += 3;
  size -= 3;
  const size_t ctx_len = context_layout(type).size;
  auto ctx = std::make_unique<uint8_t[]>(ctx_len);
  const size_t c = std::min(ctx_len, size);
  memcpy(ctx.get(), in, c);
  in += c;
  size -= c;
  auto pkt = std::make_unique<uint8_t[]>(pkt_len);
  const size_t n = std::min(pkt_len, size);
  memcpy(pkt.get(), in, n);
  in += n;
  size -= n;

  std::vector<bpf_insn> insns(std::min(size / sizeof(bpf_insn), kMaxFuzzInsns));
  if (!insns.empty()) memcpy(insns.data(), in, insns.size() * sizeof(bpf_insn));
  LoadOptions opts;
  opts.type = type;
  opts.helpers = &helpers();
  opts.resolve_map = resolve;
  LoadedProgram prog;
  std::string log;
  const int rc = load_program(insns, opts, &prog, &log);
  if (rc != 0) {
    if (log.rfind("insn ", 0) != 0) abort();  // every rejection names an instruction
    return 0;
  }
  RunInput ri;
  ri.ctx = ctx.get();
  ri.ctx_ptrs[kSlotData] = reinterpret_cast<uint64_t>(pkt.get());
  ri.ctx_ptrs[kSlotDataEnd] = reinterpret_cast<uint64_t>(pkt.get() + pkt_len);
  ri.packet_writable = heap.mode & 8;
  vm->set_budget(100'000);
  const RunResult r = vm->run(prog, ri);
  if (r.fault.kind == FaultKind::none && r.insns > 100'000) abort();
  if (r.fault.kind != FaultKind::none && r.fault.insn >= insns.size()) abort();
  return 0;
}
