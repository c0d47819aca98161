// Opening the kernel side of a conformance suite, shared by the maps, send and
// receive suites. Two ways it can be missing must stay apart: the kernel
// refusing bpf() here (no privilege, no sockmap support) skips the suite, exit
// 77; our program object not opening or loading is a failure, exit 1.
#pragma once

#include <string>

struct bpf_object;

namespace conformance {

enum class KernelOpen { ok, refused, failed };

// Probes bpf(BPF_MAP_CREATE, SOCKMAP), then opens and loads the object at
// path into *obj (closed by the caller with bpf_object__close). *why says
// what refused or failed.
KernelOpen open_bpf_object(const char* path, bpf_object** obj, std::string* why);

// Prints "SKIP: why" or "FAIL: why" and returns the suite's exit status.
int exit_without_kernel(KernelOpen status, const std::string& why);

}  // namespace conformance
