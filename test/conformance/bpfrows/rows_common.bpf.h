// What the row programs share: a counters array the loader reads back after
// the traffic (runs, bytes seen, a helper's last result), so a row shows what
// the program saw as well as what the readers got.
#pragma once

// linux/bpf.h first: the libbpf headers use its types.
#include <linux/bpf.h>

#include <bpf/bpf_helpers.h>

enum { RUNS, BYTES, HELPER_RESULT, WINDOW, NR_COUNTERS };

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, NR_COUNTERS);
  __type(key, int);
  __type(value, __s64);
} counters SEC(".maps");

static __always_inline void count(int idx, __s64 v) {
  __s64* c = bpf_map_lookup_elem(&counters, &idx);
  if (c) __sync_fetch_and_add(c, v);
}

static __always_inline void note(int idx, __s64 v) {
  __s64* c = bpf_map_lookup_elem(&counters, &idx);
  if (c) *c = v;
}
