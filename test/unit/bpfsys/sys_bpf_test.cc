// The bpf() dispatcher's reading of attr and size (the kernel's
// bpf_check_uarg_tail_zero and CHECK_ATTR), its answers for commands and map
// types it does not emulate, and map fds that dup and close. The binary holds
// the shim's hook objects, so close() and dup() reach the object table.
#include <errno.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstddef>
#include <cstring>
#include <vector>

#include "core/bpfsys/bpf_objects.h"
#include "core/bpfsys/sys_bpf.h"

using sockshim::bpfsys::sys_bpf;

namespace {

bpf_attr array_attr() {
  bpf_attr a;
  std::memset(&a, 0, sizeof a);
  a.map_type = BPF_MAP_TYPE_ARRAY;
  a.key_size = 4;
  a.value_size = 8;
  a.max_entries = 2;
  std::strcpy(a.map_name, "unit_array");
  return a;
}

long lookup(int fd, uint32_t key, uint64_t* value) {
  bpf_attr a;
  std::memset(&a, 0, sizeof a);
  a.map_fd = static_cast<uint32_t>(fd);
  a.key = reinterpret_cast<uintptr_t>(&key);
  a.value = reinterpret_cast<uintptr_t>(value);
  return sys_bpf(BPF_MAP_LOOKUP_ELEM, &a, sizeof a);
}

}  // namespace

TEST_CASE("attr size: larger than a page is E2BIG, a null attr EFAULT") {
  std::vector<unsigned char> page(4097);
  CHECK(sys_bpf(BPF_MAP_CREATE, page.data(), 4097) == -E2BIG);
  CHECK(sys_bpf(BPF_MAP_CREATE, nullptr, 8) == -EFAULT);
  // Size 0 reads nothing: an all-zero attr, map type UNSPEC.
  CHECK(sys_bpf(BPF_MAP_CREATE, nullptr, 0) == -EINVAL);
}

TEST_CASE("attr size: bytes beyond union bpf_attr must be zero") {
  std::vector<unsigned char> buf(4096);
  bpf_attr a = array_attr();
  std::memcpy(buf.data(), &a, sizeof a);
  long fd = sys_bpf(BPF_MAP_CREATE, buf.data(), 4096);
  REQUIRE(fd >= 0);
  close(static_cast<int>(fd));
  buf[sizeof(bpf_attr)] = 1;
  CHECK(sys_bpf(BPF_MAP_CREATE, buf.data(), 4096) == -E2BIG);
  buf[sizeof(bpf_attr)] = 0;
  buf[4095] = 1;
  CHECK(sys_bpf(BPF_MAP_CREATE, buf.data(), 4096) == -E2BIG);
}

TEST_CASE("attr size: a short attr is zero-filled, the bytes after it unread") {
  bpf_attr a = array_attr();
  a.map_ifindex = 77;  // past the size given: not read
  a.btf_fd = 5;
  long fd = sys_bpf(BPF_MAP_CREATE, &a, offsetof(bpf_attr, map_ifindex));
  REQUIRE(fd >= 0);
  close(static_cast<int>(fd));
}

TEST_CASE("CHECK_ATTR: a field after the command's last one must be zero") {
  bpf_attr a = array_attr();
  auto* bytes = reinterpret_cast<unsigned char*>(&a);
  bytes[offsetof(bpf_attr, map_extra) + sizeof a.map_extra] = 1;
  CHECK(sys_bpf(BPF_MAP_CREATE, &a, sizeof a) == -EINVAL);

  bpf_attr e;
  std::memset(&e, 0, sizeof e);
  e.map_fd = 0;
  e.flags = 0;
  reinterpret_cast<unsigned char*>(&e)[offsetof(bpf_attr, flags) + 8] = 1;
  CHECK(sys_bpf(BPF_MAP_LOOKUP_ELEM, &e, sizeof e) == -EINVAL);
}

TEST_CASE("commands: unknown EINVAL, known but not emulated EPERM, BTF_LOAD EPERM") {
  bpf_attr a;
  std::memset(&a, 0, sizeof a);
  CHECK(sys_bpf(999, &a, sizeof a) == -EINVAL);
  CHECK(sys_bpf(-1, &a, sizeof a) == -EINVAL);
  CHECK(sys_bpf(BPF_PROG_GET_NEXT_ID, &a, sizeof a) == -EPERM);
  CHECK(sys_bpf(BPF_LINK_UPDATE, &a, sizeof a) == -EPERM);
  CHECK(sys_bpf(BPF_BTF_LOAD, &a, sizeof a) == -EPERM);
}

TEST_CASE("map types: UNSPEC and unknown EINVAL, a kernel type not emulated EPERM") {
  bpf_attr a = array_attr();
  a.map_type = BPF_MAP_TYPE_UNSPEC;
  CHECK(sys_bpf(BPF_MAP_CREATE, &a, sizeof a) == -EINVAL);
  a.map_type = 200;
  CHECK(sys_bpf(BPF_MAP_CREATE, &a, sizeof a) == -EINVAL);
  a.map_type = BPF_MAP_TYPE_PERCPU_ARRAY;
  CHECK(sys_bpf(BPF_MAP_CREATE, &a, sizeof a) == -EPERM);
}

TEST_CASE("info: a longer info with a non-zero tail is E2BIG, a shorter one truncated") {
  bpf_attr c = array_attr();
  long fd = sys_bpf(BPF_MAP_CREATE, &c, sizeof c);
  REQUIRE(fd >= 0);
  std::vector<unsigned char> info(sizeof(bpf_map_info) + 8);
  bpf_attr a;
  std::memset(&a, 0, sizeof a);
  a.info.bpf_fd = static_cast<uint32_t>(fd);
  a.info.info = reinterpret_cast<uintptr_t>(info.data());
  a.info.info_len = static_cast<uint32_t>(info.size());
  info.back() = 1;
  CHECK(sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a, sizeof a) == -E2BIG);
  info.back() = 0;
  CHECK(sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a, sizeof a) == 0);
  CHECK(a.info.info_len == sizeof(bpf_map_info));
  bpf_map_info whole;
  std::memcpy(&whole, info.data(), sizeof whole);
  CHECK(whole.type == BPF_MAP_TYPE_ARRAY);
  CHECK(whole.max_entries == 2);
  CHECK(std::strcmp(whole.name, "unit_array") == 0);

  std::vector<unsigned char> part(8, 0xee);
  a.info.info = reinterpret_cast<uintptr_t>(part.data());
  a.info.info_len = 4;
  CHECK(sys_bpf(BPF_OBJ_GET_INFO_BY_FD, &a, sizeof a) == 0);
  CHECK(a.info.info_len == 4);
  uint32_t type;
  std::memcpy(&type, part.data(), 4);
  CHECK(type == BPF_MAP_TYPE_ARRAY);
  CHECK(part[4] == 0xee);  // nothing written past info_len
  close(static_cast<int>(fd));
}

TEST_CASE("fds: a dup refers to the same map, the last close drops it") {
  bpf_attr c = array_attr();
  long fd = sys_bpf(BPF_MAP_CREATE, &c, sizeof c);
  REQUIRE(fd >= 0);
  int copy = dup(static_cast<int>(fd));
  REQUIRE(copy >= 0);
  auto listed = [&] {
    for (const auto& m : sockshim::bpfsys::map_objects())
      if (std::strcmp(m->name, "unit_array") == 0) return true;
    return false;
  };
  CHECK(listed());
  close(static_cast<int>(fd));
  uint64_t v = 1;
  CHECK(lookup(static_cast<int>(fd), 0, &v) == -EBADF);
  CHECK(lookup(copy, 0, &v) == 0);
  CHECK(listed());
  close(copy);
  CHECK(!listed());
}
