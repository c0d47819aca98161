// A minimal reader of clang's BPF objects for the tests (libbpf's headers are
// not on the build machines): one program section, with the .text functions
// it calls appended and its relocations applied the way libbpf applies them.
// Maps (.maps symbols) become BPF_PSEUDO_MAP_FD references to fd
// kMapFdBase + index in `maps`; data sections (.bss, .data, .rodata) become
// BPF_PSEUDO_MAP_VALUE references to fd kDataFdBase + index in `data`.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <string>
#include <vector>

namespace bpf_elf {

inline constexpr int kMapFdBase = 100;
inline constexpr int kDataFdBase = 200;

struct Program {
  std::vector<bpf_insn> insns;
  std::vector<std::string> maps;                // map symbol names
  std::vector<std::string> data;                // data section names
  std::vector<std::vector<uint8_t>> data_init;  // their initial bytes (zeros for .bss)
};

// Empty string on success, else what is wrong.
std::string read_program(const std::string& path, const std::string& section, Program* out);

}  // namespace bpf_elf
