// The reference side: maps created with bpf() and programs loaded with libbpf.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <unistd.h>

#include <map>

#include "test/conformance/conformance.h"
#include "test/conformance/kernel_side.h"

namespace conformance {
namespace {

bpf_attach_type kernel_attach_type(AttachType t) {
  switch (t) {
    case AttachType::sk_msg_verdict:
      return BPF_SK_MSG_VERDICT;
    case AttachType::sk_skb_stream_parser:
      return BPF_SK_SKB_STREAM_PARSER;
    case AttachType::sk_skb_stream_verdict:
      return BPF_SK_SKB_STREAM_VERDICT;
    case AttachType::sk_skb_verdict:
      return BPF_SK_SKB_VERDICT;
  }
  return BPF_SK_MSG_VERDICT;
}

int neg_errno(int r) {
  return r < 0 ? (r == -1 ? -errno : r) : 0;
}

class KernelBackend final : public Backend {
 public:
  ~KernelBackend() override {
    free_maps();
    if (obj_) bpf_object__close(obj_);
  }
  const char* name() const override { return "kernel"; }

  KernelOpen load(const char* path, std::string* why) {
    if (KernelOpen status = open_bpf_object(path, &obj_, why); status != KernelOpen::ok)
      return status;
    const std::pair<Prog, const char*> names[] = {{Prog::msg_pass, "msg_pass"},
                                                  {Prog::msg_pass2, "msg_pass2"},
                                                  {Prog::skb_parser, "skb_parser"},
                                                  {Prog::skb_pass, "skb_pass"},
                                                  {Prog::skb_pass2, "skb_pass2"}};
    for (auto& [p, n] : names) {
      bpf_program* prog = bpf_object__find_program_by_name(obj_, n);
      if (!prog) {
        *why = std::string("no program ") + n + " in " + path;
        return KernelOpen::failed;
      }
      progs_[p] = bpf_program__fd(prog);
    }
    return KernelOpen::ok;
  }

  int create_maps(const std::vector<MapDef>& maps) override {
    for (const MapDef& d : maps) {
      int fd;
      if (d.type == MapType::sk_storage) {
        fd = create_sk_storage(d);
      } else {
        bpf_map_type t = d.type == MapType::sockmap ? BPF_MAP_TYPE_SOCKMAP : BPF_MAP_TYPE_SOCKHASH;
        fd = bpf_map_create(t, nullptr, d.key_size, d.value_size, d.max_entries, nullptr);
      }
      if (fd < 0) return neg_errno(fd);
      fds_[d.name] = fd;
    }
    return 0;
  }

  void free_maps() override {
    for (auto& [name, fd] : fds_) close(fd);
    fds_.clear();
    for (btf* b : btfs_) btf__free(b);
    btfs_.clear();
  }

  int update(const std::string& map, const void* key, const void* value, uint64_t flags) override {
    return neg_errno(bpf_map_update_elem(fd(map), key, value, flags));
  }
  int lookup(const std::string& map, const void* key, void* value) override {
    return neg_errno(bpf_map_lookup_elem(fd(map), key, value));
  }
  int del(const std::string& map, const void* key) override {
    return neg_errno(bpf_map_delete_elem(fd(map), key));
  }
  int next_key(const std::string& map, const void* key, void* next) override {
    return neg_errno(bpf_map_get_next_key(fd(map), key, next));
  }
  int attach(Prog p, const std::string& map, AttachType t) override {
    return neg_errno(bpf_prog_attach(progs_[p], fd(map), kernel_attach_type(t), 0));
  }
  int detach(Prog p, const std::string& map, AttachType t) override {
    return neg_errno(bpf_prog_detach2(progs_[p], fd(map), kernel_attach_type(t)));
  }

 private:
  int fd(const std::string& map) { return fds_.at(map); }

  // SK_STORAGE needs BTF for its key (a 32-bit int) and value.
  int create_sk_storage(const MapDef& d) {
    btf* b = btf__new_empty();
    btfs_.push_back(b);
    int int_id = btf__add_int(b, "int", 4, BTF_INT_SIGNED);
    int char_id = btf__add_int(b, "char", 1, BTF_INT_CHAR);
    int arr_id = btf__add_array(b, int_id, char_id, d.value_size);
    int val_id = btf__add_struct(b, "value", d.value_size);
    btf__add_field(b, "bytes", arr_id, 0, 0);
    if (int r = btf__load_into_kernel(b)) return r;
    LIBBPF_OPTS(bpf_map_create_opts, opts, .btf_fd = static_cast<__u32>(btf__fd(b)),
                .btf_key_type_id = static_cast<__u32>(int_id),
                .btf_value_type_id = static_cast<__u32>(val_id), .map_flags = BPF_F_NO_PREALLOC);
    return bpf_map_create(BPF_MAP_TYPE_SK_STORAGE, nullptr, d.key_size, d.value_size, 0, &opts);
  }

  bpf_object* obj_ = nullptr;
  std::map<Prog, int> progs_;
  std::map<std::string, int> fds_;
  std::vector<btf*> btfs_;
};

}  // namespace

std::unique_ptr<Backend> make_kernel_backend(const char* progs_obj, KernelOpen* status,
                                             std::string* why) {
  auto b = std::make_unique<KernelBackend>();
  *status = b->load(progs_obj, why);
  if (*status != KernelOpen::ok) return nullptr;
  return b;
}

}  // namespace conformance
