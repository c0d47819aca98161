#include "core/domain/shared_policy.h"

#include <cstring>
#include <new>

namespace sockshim::domain {
namespace {

constexpr uint64_t kPolicyMagic = 0x5943494c4f504444;  // "DDPOLICY"

}  // namespace

PolicyRec* policy_rec(Arena& a, bool create, int* err) noexcept {
  ArenaHeader* h = a.header();
  if (h->policy == 0) {
    if (!create) return nullptr;
    uint64_t off = a.alloc(sizeof(PolicyRec), err);
    if (!off) return nullptr;
    auto* r = a.at<PolicyRec>(off);
    r->magic = kPolicyMagic;
    h->policy = off;  // last: the record is whole once it is linked
    return r;
  }
  auto* r = a.payload_size(h->policy) >= sizeof(PolicyRec) ? a.at<PolicyRec>(h->policy) : nullptr;
  if (!r || r->magic != kPolicyMagic) {
    a.corrupt("the published policy record at offset %llu is overwritten",
              static_cast<unsigned long long>(h->policy));
    *err = -EUCLEAN;
    return nullptr;
  }
  if (r->blob &&
      (r->path_len > kMaxKeyBytes || a.payload_size(r->blob) < r->path_len + 1 + r->text_len)) {
    a.corrupt("the published policy's text at offset %llu is overwritten (its lengths)",
              static_cast<unsigned long long>(r->blob));
    *err = -EUCLEAN;
    return nullptr;
  }
  return r;
}

int policy_publish(Arena& a, std::string_view path, std::string_view text, uint64_t* gen) noexcept {
  int err = 0;
  PolicyRec* r = policy_rec(a, true, &err);
  if (!r) return err;
  if (path.size() > kMaxKeyBytes) return -ENAMETOOLONG;
  uint64_t off = a.alloc(path.size() + 1 + text.size(), &err);
  if (!off) return err;
  auto* p = a.at<char>(off, path.size() + 1 + text.size());
  memcpy(p, path.data(), path.size());
  p[path.size()] = '\0';
  memcpy(p + path.size() + 1, text.data(), text.size());
  uint64_t old = r->blob;
  r->blob = 0;  // a holder killed from here on leaves no blob, never a mismatched one
  r->path_len = path.size();
  r->text_len = text.size();
  r->blob = off;  // the commit
  if (old) a.free(old);
  *gen = r->gen.load(std::memory_order_relaxed) + 1;
  r->gen.store(*gen, std::memory_order_release);
  a.header()->generation.fetch_add(1, std::memory_order_release);
  return 0;
}

int policy_read(Arena& a, uint64_t* gen, std::string* path, std::string* text) noexcept {
  int err = 0;
  PolicyRec* r = policy_rec(a, false, &err);
  *gen = r ? r->gen.load(std::memory_order_acquire) : 0;
  if (!r || !r->blob) return err;
  const char* p = a.at<char>(r->blob, r->path_len + 1 + r->text_len);
  try {
    path->assign(p, r->path_len);
    text->assign(p + r->path_len + 1, r->text_len);
  } catch (const std::bad_alloc&) {
    return -ENOMEM;
  }
  return 0;
}

bool domain_policy_check(Arena& a, std::vector<uint64_t>* keep) noexcept {
  int err = 0;
  PolicyRec* r = policy_rec(a, false, &err);
  if (!r) return err == 0;
  try {
    keep->push_back(a.header()->policy);
    if (r->blob) keep->push_back(r->blob);
  } catch (const std::bad_alloc&) {
    a.corrupt("out of memory while checking the published policy");
    return false;
  }
  return true;
}

}  // namespace sockshim::domain
