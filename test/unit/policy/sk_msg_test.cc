// SkMsg against the kernel's numbers (KERNEL-SEMANTICS.md §3.4, the [V] rows).
#include <catch2/catch.hpp>
#include <cerrno>
#include <string>

#include "policy/sk_msg.h"

using sockshim::policy::SkMsg;

namespace {
SkMsg ten() {
  const std::string s = "0123456789";
  return SkMsg({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
}
std::string str(const SkMsg& m) {
  return std::string(reinterpret_cast<const char*>(m.bytes().data()), m.size());
}
}  // namespace

TEST_CASE("pull_data bounds", "[policy][sk_msg]") {
  SkMsg m = ten();
  CHECK(m.pull_data(0, 5, 0) == 0);
  CHECK(m.data_start() == 0);
  CHECK(m.data_end() == 5);
  CHECK(m.pull_data(5, 5, 0) == -EINVAL);
  CHECK(m.pull_data(0, 11, 0) == -EINVAL);
  CHECK(m.pull_data(10, 11, 0) == -EINVAL);
  CHECK(m.pull_data(0, 5, 1) == -EINVAL);
  CHECK(m.pull_data(3, 10, 0) == 0);
  CHECK(std::string(m.data().begin(), m.data().end()) == "3456789");
}

TEST_CASE("push_data bounds and effect", "[policy][sk_msg]") {
  SkMsg m = ten();
  const uint8_t fill[] = {'a', 'b'};
  CHECK(m.push_data(0, 3, 0, fill) == 0);
  CHECK(str(m) == "aba0123456789");
  CHECK(m.size() == 13);
  SkMsg e = ten();
  CHECK(e.push_data(10, 3, 0) == 0);
  CHECK(e.size() == 13);
  CHECK(e.bytes()[10] == 0);
  SkMsg f = ten();
  CHECK(f.push_data(11, 3, 0) == -EINVAL);
  CHECK(f.push_data(0, 3, 2) == -EINVAL);
  CHECK(f.push_data(4, 0, 0) == 0);
  CHECK(str(f) == "0123456789");
}

TEST_CASE("pop_data bounds and effect", "[policy][sk_msg]") {
  SkMsg a = ten();
  CHECK(a.pop_data(0, 3, 0) == 0);
  CHECK(str(a) == "3456789");
  SkMsg b = ten();
  CHECK(b.pop_data(7, 3, 0) == 0);
  CHECK(str(b) == "0123456");
  SkMsg c = ten();
  CHECK(c.pop_data(8, 3, 0) == -EINVAL);
  CHECK(c.pop_data(10, 1, 0) == -EINVAL);
  CHECK(c.pop_data(0x48a3, 0xfffffffd, 0) == -EINVAL);
  CHECK(c.pop_data(1, 0xffffffff, 0) == -EINVAL);
  CHECK(c.pop_data(0, 1, 1) == -EINVAL);
  CHECK(c.pop_data(3, 0, 0) == 0);
  CHECK(c.pop_data(0, 10, 0) == 0);
  CHECK(c.size() == 0);
}

TEST_CASE("the window covers the first 32 KiB frag and resets after push/pop", "[policy][sk_msg]") {
  std::vector<uint8_t> big(200000, 'x');
  SkMsg m(big);
  CHECK(m.data_end() - m.data_start() == 32768);
  CHECK(m.pull_data(100000, 100010, 0) == 0);
  CHECK(m.data().size() == 10);
  CHECK(m.pop_data(0, 1, 0) == 0);
  CHECK(m.data_start() == 0);
  CHECK(m.data_end() == 32768);
  SkMsg small = ten();
  CHECK(small.data().size() == 10);
}

TEST_CASE("apply_bytes and cork_bytes store the value", "[policy][sk_msg]") {
  SkMsg m = ten();
  CHECK(m.apply_bytes(4) == 0);
  CHECK(m.cork_bytes(100) == 0);
  CHECK(m.apply_bytes() == 4);
  CHECK(m.cork_bytes() == 100);
  m.assign({});
  CHECK(m.apply_bytes() == 0);
  CHECK(m.cork_bytes() == 0);
  CHECK(m.size() == 0);
}
