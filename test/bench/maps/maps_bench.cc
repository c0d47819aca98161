// Socketpairs across a sockmap, a sockhash and sk_storage maps: update, lookup
// and delete rates on one thread, and memory per entry.
// Usage: maps_bench [entries] [repetitions]. Rates are the median of the
// repetitions; memory is measured on the first (later ones reuse psocks).
//
// Each socket needs an fd, so the pair count is bounded by RLIMIT_NOFILE. When
// the hard limit cannot be raised (no CAP_SYS_RESOURCE), the program runs two
// layouts: one entry per socket with as many pairs as fit, and the requested
// entry count with each socket at several keys (sharing its psock) and in
// several sk_storage maps.
#include <malloc.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "core/maps/bpf_syscall.h"
#include "core/maps/map_table.h"
#include "core/psock/psock.h"
#include "shim/sockshim.h"

using namespace sockshim;
using Clock = std::chrono::steady_clock;

namespace {

long rss_bytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  long pages = 0, resident = 0;
  if (f) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return resident * sysconf(_SC_PAGESIZE);
}

size_t heap_bytes() {
  return mallinfo2().uordblks;
}

struct Mem {
  long rss = rss_bytes();
  size_t heap = heap_bytes();
};

template <typename Fn>
double rate(size_t ops, Fn&& fn) {
  auto t0 = Clock::now();
  fn();
  double s = std::chrono::duration<double>(Clock::now() - t0).count();
  return ops / s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

policy::MapSpec spec(const char* name, policy::MapType t, uint32_t max) {
  policy::MapSpec s;
  s.name = name;
  s.type = t;
  s.max_entries = t == policy::MapType::sk_storage ? 0 : max;
  s.key_size = 4;
  s.value_size = 8;
  if (t == policy::MapType::sk_storage) s.flags = policy::BPF_F_NO_PREALLOC;
  return s;
}

struct Figures {
  std::vector<double> update, lookup, lookup_capi, del;
  double rss_per_entry = 0, heap_per_entry = 0;
};

// Runs the benchmark with pairs a[i]/b[i], each socket at per_socket keys:
// sockmap key i*per_socket+j holds a[i], sockhash key i*per_socket+j holds
// b[i], sk_storage map j holds a value for a[i].
bool run_layout(const std::vector<int>& a, const std::vector<int>& b, uint32_t per_socket,
                int reps) {
  uint32_t pairs = static_cast<uint32_t>(a.size());
  uint32_t n = pairs * per_socket;
  std::vector<std::string> st_names;
  for (uint32_t j = 0; j < per_socket; ++j) st_names.push_back("sk_storage" + std::to_string(j));
  Figures fig[3];
  // What each map costs before its first entry (slot array, buckets, chunk
  // index), measured on a map of its own and added to its per-entry figure.
  Mem created[3];
  for (int m = 0; m < 3; ++m) {
    Mem before;
    std::vector<policy::MapSpec> one;
    if (m < 2)
      one.push_back(spec(m == 0 ? "sockmap" : "sockhash",
                         m == 0 ? policy::MapType::sockmap : policy::MapType::sockhash, n));
    else
      for (auto& name : st_names) one.push_back(spec(name.c_str(), policy::MapType::sk_storage, 0));
    std::unique_ptr<MapTable> t;
    std::string err;
    if (MapTable::create(one, {}, &t, &err) != 0) return false;
    Mem after;
    created[m].rss = after.rss - before.rss;
    created[m].heap = after.heap - before.heap;
  }
  for (int rep = 0; rep < reps; ++rep) {
    std::vector<policy::MapSpec> specs = {spec("sockmap", policy::MapType::sockmap, n),
                                          spec("sockhash", policy::MapType::sockhash, n)};
    for (auto& name : st_names) specs.push_back(spec(name.c_str(), policy::MapType::sk_storage, 0));
    std::unique_ptr<MapTable> table;
    std::string err;
    if (MapTable::create(specs, {}, &table, &err) != 0) {
      std::fprintf(stderr, "map creation failed: %s\n", err.c_str());
      return false;
    }
    std::shared_ptr<MapTable> shared(std::move(table));
    install_maps(shared);
    BpfMap* sockmap = shared->find("sockmap");
    BpfMap* sockhash = shared->find("sockhash");
    std::vector<BpfMap*> storage;
    for (auto& name : st_names) storage.push_back(shared->find(name));

    // op(m, e, fn): fn(map, map name, key, fd) for entry e of map kind m.
    auto entry = [&](int m, uint32_t e, auto&& fn) {
      uint32_t i = e / per_socket, j = e % per_socket;
      if (m == 0) return fn(*sockmap, "sockmap", static_cast<const void*>(&e), a[i]);
      if (m == 1) return fn(*sockhash, "sockhash", static_cast<const void*>(&e), b[i]);
      return fn(*storage[j], st_names[j].c_str(), static_cast<const void*>(&a[i]), a[i]);
    };
    int failures = 0;
    uint64_t sink = 0;
    for (int m = 0; m < 3; ++m) {
      Mem before;
      fig[m].update.push_back(rate(n, [&] {
        for (uint32_t e = 0; e < n; ++e)
          entry(m, e, [&](BpfMap& map, const char*, const void* key, int fd) {
            uint64_t v = m == 2 ? e : static_cast<uint64_t>(fd);
            if (map_update_elem(map, key, &v, BPF_ANY) != 0) ++failures;
            return 0;
          });
      }));
      Mem after;
      if (rep == 0) {
        fig[m].rss_per_entry = static_cast<double>(after.rss - before.rss + created[m].rss) / n;
        fig[m].heap_per_entry = static_cast<double>(after.heap - before.heap + created[m].heap) / n;
      }
      const int rounds = 10;
      fig[m].lookup.push_back(rate(static_cast<size_t>(n) * rounds, [&] {
        for (int r = 0; r < rounds; ++r)
          for (uint32_t e = 0; e < n; ++e)
            entry(m, e, [&](BpfMap& map, const char*, const void* key, int) {
              uint64_t v;
              if (map_lookup_elem(map, key, &v) == 0) sink += v;
              return 0;
            });
      }));
      fig[m].lookup_capi.push_back(rate(n, [&] {
        for (uint32_t e = 0; e < n; ++e)
          entry(m, e, [&](BpfMap&, const char* name, const void* key, int) {
            uint64_t v;
            if (sockshim_map_lookup_elem(name, key, &v) == 0) sink += v;
            return 0;
          });
      }));
    }
    if (sink == 0) ++failures;
    for (int m = 0; m < 3; ++m)
      fig[m].del.push_back(rate(n, [&] {
        for (uint32_t e = 0; e < n; ++e)
          entry(m, e, [&](BpfMap& map, const char*, const void* key, int) {
            if (map_delete_elem(map, key) != 0) ++failures;
            return 0;
          });
      }));
    if (failures) {
      std::fprintf(stderr, "%d operations failed\n", failures);
      return false;
    }
    install_maps(nullptr);
  }

  std::printf("\n%u socketpairs, %u entries per map kind (%u key%s per socket%s), %d repetitions\n",
              pairs, n, per_socket, per_socket > 1 ? "s" : "",
              per_socket > 1 ? ", psocks shared, one sk_storage map per key" : "", reps);
  const char* names[] = {"sockmap", "sockhash", "sk_storage"};
  std::printf("%-11s %12s %14s %16s %12s %12s %12s\n", "map", "update/s", "lookup/s",
              "C-API lookup/s", "delete/s", "RSS B/entry", "heap B/entry");
  for (int m = 0; m < 3; ++m)
    std::printf("%-11s %12.0f %14.0f %16.0f %12.0f %12.1f %12.1f\n", names[m],
                median(fig[m].update), median(fig[m].lookup), median(fig[m].lookup_capi),
                median(fig[m].del), fig[m].rss_per_entry, fig[m].heap_per_entry);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  uint32_t entries = argc > 1 ? static_cast<uint32_t>(std::strtoul(argv[1], nullptr, 10)) : 100000;
  int reps = argc > 2 ? std::atoi(argv[2]) : 3;
  rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  rlim_t want = 2 * static_cast<rlim_t>(entries) + 64;
  if (rl.rlim_max < want) {
    rlimit raised{want, want};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  uint32_t pairs = static_cast<uint32_t>(
      std::min<rlim_t>(entries, rl.rlim_cur > 164 ? (rl.rlim_cur - 164) / 2 : 0));
  std::printf("maps_bench: median rates on one thread; sizeof(Psock) = %zu B\n", sizeof(Psock));
  if (pairs < entries)
    std::printf("RLIMIT_NOFILE hard limit %llu (not raisable here): %u socketpairs at most\n",
                static_cast<unsigned long long>(rl.rlim_max), pairs);
  std::vector<int> a(pairs), b(pairs);
  for (uint32_t i = 0; i < pairs; ++i) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) {
      std::perror("socketpair");
      return 1;
    }
    a[i] = sv[0];
    b[i] = sv[1];
  }
  bool ok = run_layout(a, b, 1, reps);
  if (ok && pairs < entries) ok = run_layout(a, b, (entries + pairs - 1) / pairs, reps);
  for (uint32_t i = 0; i < pairs; ++i) {
    close(a[i]);
    close(b[i]);
  }
  return ok ? 0 : 1;
}
