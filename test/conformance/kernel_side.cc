#include "test/conformance/kernel_side.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

namespace conformance {
namespace {

std::string libbpf_error(int err) {
  char buf[128];
  libbpf_strerror(err, buf, sizeof buf);
  return buf;
}

}  // namespace

KernelOpen open_bpf_object(const char* path, bpf_object** obj, std::string* why) {
  *obj = nullptr;
  libbpf_set_print([](libbpf_print_level, const char*, va_list) { return 0; });
  int probe = bpf_map_create(BPF_MAP_TYPE_SOCKMAP, nullptr, 4, 4, 1, nullptr);
  if (probe < 0) {
    *why = std::string("bpf(BPF_MAP_CREATE, SOCKMAP) refused: ") + strerror(errno);
    return KernelOpen::refused;
  }
  close(probe);
  bpf_object* o = bpf_object__open_file(path, nullptr);
  if (!o || libbpf_get_error(o)) {
    *why = std::string("cannot open ") + path + ": " + libbpf_error(errno);
    return KernelOpen::failed;
  }
  if (int r = bpf_object__load(o)) {
    *why = std::string(path) + " did not load: " + libbpf_error(-r);
    bpf_object__close(o);
    return KernelOpen::failed;
  }
  *obj = o;
  return KernelOpen::ok;
}

int exit_without_kernel(KernelOpen status, const std::string& why) {
  if (status == KernelOpen::refused) {
    std::printf("SKIP: %s (the kernel side needs bpf() as root)\n", why.c_str());
    return 77;
  }
  std::printf("FAIL: %s\n", why.c_str());
  return 1;
}

}  // namespace conformance
