// The policy a reload publishes in its domain: publish and read back, the
// generation, blocks given back, and scribbled memory.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "core/domain/shared_policy.h"
#include "test/unit/domain/domain_test_util.h"

using namespace sockshim::domain;
using domain_test::SharedArena;

TEST_CASE("domain policy: publish, read back, generations") {
  SharedArena a;
  uint64_t gen = 99;
  std::string path, text;
  REQUIRE(policy_read(a.arena, &gen, &path, &text) == 0);
  REQUIRE(gen == 0);  // nothing published yet
  REQUIRE(policy_publish(a.arena, "/p/x.json", "{\"version\": 1}", &gen) == 0);
  REQUIRE(gen == 1);
  uint64_t used = a.header()->used_bytes;
  REQUIRE(policy_publish(a.arena, "/p/y.json", "{\"version\": 1 }", &gen) == 0);
  REQUIRE(gen == 2);
  REQUIRE(a.header()->used_bytes == used);  // the old text went (the new one fits the same)
  REQUIRE(policy_read(a.arena, &gen, &path, &text) == 0);
  REQUIRE(gen == 2);
  REQUIRE(path == "/p/y.json");
  REQUIRE(text == "{\"version\": 1 }");
  std::vector<uint64_t> keep;
  REQUIRE(domain_policy_check(a.arena, &keep));
  REQUIRE(keep.size() == 2);
  REQUIRE(a.arena.check("name:test") == 0);
}

TEST_CASE("domain policy: scribbled memory fails closed, saying what is wrong") {
  SharedArena a;
  uint64_t gen = 0;
  std::string path, text;
  REQUIRE(policy_publish(a.arena, "/p/x.json", "{}", &gen) == 0);
  int err = 0;
  PolicyRec* r = policy_rec(a.arena, false, &err);
  REQUIRE(r != nullptr);
  std::vector<uint64_t> keep;
  SECTION("the record's magic") {
    r->magic = 1;
    REQUIRE(policy_read(a.arena, &gen, &path, &text) == -EUCLEAN);
    REQUIRE(std::string(a.arena.why()).find("published policy record") != std::string::npos);
    REQUIRE_FALSE(domain_policy_check(a.arena, &keep));
  }
  SECTION("the text's length") {
    r->text_len = a.size;
    REQUIRE(policy_read(a.arena, &gen, &path, &text) == -EUCLEAN);
    REQUIRE(std::string(a.arena.why()).find("its lengths") != std::string::npos);
  }
  SECTION("the root offset") {
    a.header()->policy = 8;
    REQUIRE(a.arena.check("name:test") == -EUCLEAN);
    REQUIRE(std::string(a.arena.why()).find("policy root") != std::string::npos);
  }
}
