// The arena: allocation by offsets, bounds, and what a reader is told about
// scribbled or truncated memory.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/domain/arena.h"
#include "core/domain/members.h"
#include "test/unit/domain/domain_test_util.h"

using namespace sockshim::domain;
using domain_test::SharedArena;

namespace {

std::string check_error(Arena& arena, const char* key = "name:test") {
  return arena.check(key) == 0 ? "" : arena.why();
}

}  // namespace

TEST_CASE("a fresh arena checks out and allocations come back zeroed, apart and freed") {
  SharedArena a;
  REQUIRE(check_error(a.arena) == "");
  uint64_t base_used = a.header()->used_bytes;  // the member table
  int err = 0;
  std::vector<uint64_t> offs;
  for (uint64_t n : {1, 16, 100, 4096, 7}) {
    uint64_t off = a.arena.alloc(n, &err);
    REQUIRE(off != 0);
    REQUIRE(a.arena.payload_size(off) >= n);
    auto* p = a.arena.at<unsigned char>(off, n);
    REQUIRE(p != nullptr);
    for (uint64_t i = 0; i < n; ++i) REQUIRE(p[i] == 0);
    memset(p, 0xab, n);
    offs.push_back(off);
  }
  for (size_t i = 1; i < offs.size(); ++i)
    REQUIRE(offs[i] >= offs[i - 1] + a.arena.payload_size(offs[i - 1]));
  REQUIRE(check_error(a.arena) == "");
  uint64_t gen = a.header()->generation.load();
  // Freed out of order: neighbours coalesce back into one free block.
  for (size_t i : {1, 3, 0, 4, 2}) REQUIRE(a.arena.free(offs[i]) == 0);
  REQUIRE(a.header()->generation.load() > gen);
  REQUIRE(a.header()->used_bytes == base_used);
  REQUIRE(check_error(a.arena) == "");
  uint64_t big = a.arena.alloc(a.size / 2, &err);
  REQUIRE(big != 0);  // one block again, big enough
  REQUIRE(a.arena.free(big) == 0);
}

TEST_CASE("the arena runs out with ENOMEM and recovers after frees") {
  SharedArena a(64 << 10);
  int err = 0;
  std::vector<uint64_t> offs;
  for (uint64_t off; (off = a.arena.alloc(1000, &err)) != 0;) offs.push_back(off);
  REQUIRE(err == -ENOMEM);
  REQUIRE(offs.size() > 10);
  REQUIRE(a.arena.alloc(uint64_t{1} << 62, &err) == 0);
  REQUIRE(err == -ENOMEM);
  for (uint64_t off : offs) REQUIRE(a.arena.free(off) == 0);
  REQUIRE(check_error(a.arena) == "");
  REQUIRE(a.arena.alloc(1000, &err) != 0);
}

TEST_CASE("every offset is bounds-checked") {
  SharedArena a(64 << 10);
  REQUIRE(a.arena.at<char>(0, 1) == nullptr);                      // inside the header
  REQUIRE(a.arena.at<char>(a.size, 1) == nullptr);                 // past the end
  REQUIRE(a.arena.at<char>(a.size - 4, 8) == nullptr);             // runs past the end
  REQUIRE(a.arena.at<char>(kHeapStart, ~uint64_t{0}) == nullptr);  // length overflows
  REQUIRE(a.arena.at<uint64_t>(kHeapStart + 4) == nullptr);        // misaligned
  REQUIRE(a.arena.at<char>(kHeapStart, 16) != nullptr);
  REQUIRE(a.arena.free(12345) == -EUCLEAN);  // not a block
  REQUIRE(std::string(a.arena.why()).find("not a used block") != std::string::npos);
  REQUIRE(a.arena.free(a.size + 16) == -EUCLEAN);
  REQUIRE(a.arena.payload_size(~uint64_t{0}) == 0);
}

TEST_CASE("a scribbled header is refused, naming what is wrong") {
  SharedArena a;
  SECTION("magic") {
    a.header()->magic = 0x1234;
    REQUIRE(check_error(a.arena).find("bad magic") != std::string::npos);
  }
  SECTION("version") {
    a.header()->version = 99;
    REQUIRE(check_error(a.arena).find("arena version 99") != std::string::npos);
  }
  SECTION("size: a truncated file") {
    Arena shorter(a.base, a.size / 2);
    REQUIRE(shorter.check("name:test") == -EUCLEAN);
    REQUIRE(std::string(shorter.why()).find("truncated") != std::string::npos);
  }
  SECTION("smaller than a header") {
    Arena tiny(a.base, 100);
    REQUIRE(tiny.check("name:test") == -EUCLEAN);
    REQUIRE(std::string(tiny.why()).find("fewer than") != std::string::npos);
  }
  SECTION("another domain's key") {
    REQUIRE(check_error(a.arena, "name:other").find("another domain key") != std::string::npos);
  }
  SECTION("free list head out of bounds") {
    a.header()->free_head = a.size + 4096;
    REQUIRE(check_error(a.arena).find("free list") != std::string::npos);
    int err = 0;
    REQUIRE(a.arena.alloc(10, &err) == 0);
    REQUIRE(err == -EUCLEAN);
    REQUIRE(std::string(a.arena.why()).find("outside the heap") != std::string::npos);
  }
  SECTION("used bytes") {
    a.header()->used_bytes += 16;
    REQUIRE(check_error(a.arena).find("used blocks add up") != std::string::npos);
  }
}

TEST_CASE("scribbled blocks are refused, never followed") {
  SharedArena a;
  int err = 0;
  uint64_t off = a.arena.alloc(64, &err);
  REQUIRE(off != 0);
  auto* b = a.arena.at<BlockHeader>(off - sizeof(BlockHeader));
  SECTION("a size past the end") {
    b->size_used = (uint64_t{1} << 40) | 1;
    REQUIRE(check_error(a.arena).find("does not fit the heap") != std::string::npos);
    REQUIRE(a.arena.free(off) == -EUCLEAN);
  }
  SECTION("a zero size, which would loop") {
    b->size_used = 1;
    REQUIRE(check_error(a.arena).find("does not fit the heap") != std::string::npos);
  }
  SECTION("a used block's tag") {
    b->next_free = 7;
    REQUIRE(check_error(a.arena).find("broken tag") != std::string::npos);
  }
  SECTION("a free list going backwards") {
    uint64_t free_off = a.header()->free_head;
    a.arena.at<BlockHeader>(free_off)->next_free = kHeapStart;
    REQUIRE(check_error(a.arena).find("free list") != std::string::npos);
    REQUIRE(a.arena.alloc(a.size / 2, &err) == 0);
    REQUIRE(err == -EUCLEAN);
  }
}

TEST_CASE("rebuild repairs what a process killed mid-allocation leaves") {
  SharedArena a;
  int err = 0;
  uint64_t kept = a.arena.alloc(100, &err);
  uint64_t used_before = a.header()->used_bytes;
  // Killed between marking a block used and unlinking it from the free list:
  // the free list points at a used block, the used bytes are stale.
  uint64_t free_off = a.header()->free_head;
  auto* f = a.arena.at<BlockHeader>(free_off);
  uint64_t n = f->size_used;
  auto* rest = a.arena.at<BlockHeader>(free_off + 64);
  rest->next_free = 0;
  rest->size_used = n - 64;
  f->size_used = 64 | 1;
  REQUIRE(check_error(a.arena) != "");
  uint64_t keep[] = {a.header()->root, kept};
  REQUIRE(a.arena.rebuild(keep, 2) == 0);
  REQUIRE(check_error(a.arena) == "");
  REQUIRE(a.header()->used_bytes == used_before);  // the orphan block was given back
  REQUIRE(a.arena.payload_size(kept) >= 100);
  REQUIRE(a.arena.rebuild(nullptr, 0) == 0);
  REQUIRE(check_error(a.arena) == "");
}

TEST_CASE("random scribbles on the arena never crash or hang a reader, and are named") {
  std::mt19937_64 rng(20261202);
  constexpr uint64_t kSize = 64 << 10;
  SharedArena pristine(kSize);
  int err = 0;
  REQUIRE(member_join(pristine.arena, getpid(), process_start_time(getpid()), "/p/a", "a") >= 0);
  for (int i = 0; i < 20; ++i) pristine.arena.alloc(100 + 37 * i, &err);
  SharedArena a(kSize);
  int refused = 0;
  for (int round = 0; round < 3000; ++round) {
    memcpy(a.base, pristine.base, kSize);
    for (int n = 1 + rng() % 4; n > 0; --n) {
      // A word anywhere past the lock: a random value, or a plausible offset.
      constexpr uint64_t kFirst = offsetof(ArenaHeader, free_head);
      uint64_t at = kFirst + rng() % (kSize - kFirst - 8);
      at -= at % 8;  // stays within the arena: kSize is a multiple of 8
      uint64_t value = rng() % 3 == 0 ? rng() : rng() % (kSize + 64);
      memcpy(static_cast<char*>(a.base) + at, &value, 8);
    }
    bool whole = a.arena.check("name:test") == 0;
    refused += !whole;
    if (!whole) REQUIRE(a.arena.why()[0] != '\0');
    std::vector<Member> members;
    int r = members_list(a.arena, &members);
    REQUIRE((r == 0 || (r == -EUCLEAN && a.arena.why()[0])));
    uint64_t off = a.arena.alloc(rng() % 5000, &err);
    if (off) REQUIRE(a.arena.at<char>(off, 1) != nullptr);
    a.arena.free(rng() % (kSize + 100));
    a.arena.rebuild(nullptr, 0);
    members_repair(a.arena);
  }
  INFO("scribbled arenas refused by the check: " << refused);
  // Most words land in payloads or free space, which hold no structure: about
  // 1 round in 60 hits a word the check can tell is wrong.
  REQUIRE(refused > 20);
}
