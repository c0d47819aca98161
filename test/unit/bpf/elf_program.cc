#include "elf_program.h"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <iterator>

namespace bpf_elf {

namespace {

constexpr uint32_t kRelo64 = 1;   // R_BPF_64_64: lddw of a map or data address
constexpr uint32_t kRelo32 = 10;  // R_BPF_64_32: call of a function

struct Object {
  std::string bytes;
  const Elf64_Shdr* sh = nullptr;
  size_t nsec = 0;
  const char* shstr = nullptr;

  const char* section_name(size_t i) const { return shstr + sh[i].sh_name; }
  const uint8_t* section_data(size_t i) const {
    return reinterpret_cast<const uint8_t*>(bytes.data()) + sh[i].sh_offset;
  }
  size_t find(const std::string& name) const {
    for (size_t i = 0; i < nsec; ++i)
      if (name == section_name(i)) return i;
    return 0;
  }
};

std::vector<bpf_insn> insns_of(const Object& o, size_t sec) {
  std::vector<bpf_insn> v(o.sh[sec].sh_size / sizeof(bpf_insn));
  memcpy(v.data(), o.section_data(sec), v.size() * sizeof(bpf_insn));
  return v;
}

size_t index_of(std::vector<std::string>& names, const std::string& n) {
  auto it = std::find(names.begin(), names.end(), n);
  if (it != names.end()) return it - names.begin();
  names.push_back(n);
  return names.size() - 1;
}

}  // namespace

std::string read_program(const std::string& path, const std::string& section, Program* out) {
  Object o;
  std::ifstream in(path, std::ios::binary);
  if (!in) return "cannot open " + path;
  o.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (o.bytes.size() < sizeof(Elf64_Ehdr) || memcmp(o.bytes.data(), ELFMAG, SELFMAG) != 0)
    return "not an ELF file";
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(o.bytes.data());
  if (eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_BPF) return "not a BPF object";
  o.sh = reinterpret_cast<const Elf64_Shdr*>(o.bytes.data() + eh->e_shoff);
  o.nsec = eh->e_shnum;
  o.shstr = reinterpret_cast<const char*>(o.section_data(eh->e_shstrndx));

  const size_t prog = o.find(section);
  if (!prog) return "no section " + section;
  const size_t text = o.find(".text");
  size_t symtab = 0;
  for (size_t i = 0; i < o.nsec; ++i)
    if (o.sh[i].sh_type == SHT_SYMTAB) symtab = i;
  if (!symtab) return "no symbol table";
  const auto* syms = reinterpret_cast<const Elf64_Sym*>(o.section_data(symtab));
  const char* strtab = reinterpret_cast<const char*>(o.section_data(o.sh[symtab].sh_link));

  out->insns = insns_of(o, prog);
  const size_t text_base = out->insns.size();
  bool text_used = false;

  // Relocate the program section and, once appended, .text.
  auto relocate = [&](size_t sec, size_t base) -> std::string {
    for (size_t r = 0; r < o.nsec; ++r) {
      if (o.sh[r].sh_type != SHT_REL || o.sh[r].sh_info != sec) continue;
      const auto* rel = reinterpret_cast<const Elf64_Rel*>(o.section_data(r));
      for (size_t k = 0; k < o.sh[r].sh_size / sizeof(Elf64_Rel); ++k) {
        const Elf64_Sym& s = syms[ELF64_R_SYM(rel[k].r_info)];
        const size_t at = base + rel[k].r_offset / sizeof(bpf_insn);
        bpf_insn& insn = out->insns[at];
        const std::string target = o.section_name(s.st_shndx);
        if (ELF64_R_TYPE(rel[k].r_info) == kRelo32) {
          if (s.st_shndx != text) return "call outside .text";
          const int64_t callee = static_cast<int64_t>(s.st_value / sizeof(bpf_insn)) + insn.imm + 1;
          insn.imm = static_cast<int32_t>(static_cast<int64_t>(text_base) + callee -
                                          static_cast<int64_t>(at) - 1);
          text_used = true;
        } else if (ELF64_R_TYPE(rel[k].r_info) == kRelo64) {
          if (target == ".maps") {
            insn.src_reg = BPF_PSEUDO_MAP_FD;
            insn.imm = kMapFdBase + static_cast<int>(index_of(out->maps, strtab + s.st_name));
          } else {
            insn.src_reg = BPF_PSEUDO_MAP_VALUE;
            out->insns[at + 1].imm = static_cast<int32_t>(s.st_value) + insn.imm;
            insn.imm = kDataFdBase + static_cast<int>(index_of(out->data, target));
          }
        } else {
          return "unknown relocation type";
        }
      }
    }
    return "";
  };
  if (std::string e = relocate(prog, 0); !e.empty()) return e;
  if (text_used) {
    const std::vector<bpf_insn> t = insns_of(o, text);
    out->insns.insert(out->insns.end(), t.begin(), t.end());
    if (std::string e = relocate(text, text_base); !e.empty()) return e;
  }
  for (const std::string& name : out->data) {
    const size_t i = o.find(name);
    if (o.sh[i].sh_type == SHT_NOBITS) {
      out->data_init.emplace_back(o.sh[i].sh_size, 0);
    } else {
      const uint8_t* b = o.section_data(i);
      out->data_init.emplace_back(b, b + o.sh[i].sh_size);
    }
  }
  return "";
}

}  // namespace bpf_elf
