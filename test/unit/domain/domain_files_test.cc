// Domain identity and files: the key, the directory 0700 and the arena 0600,
// and what is refused (another user's files, files open to others, a
// symlink, a truncated arena), each with a sentence saying why.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "core/domain/domain.h"
#include "test/unit/domain/domain_test_util.h"

using namespace sockshim::domain;
using domain_test::mode_of;
using domain_test::TempDir;

namespace {

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("the domain key: a name, else the policy's real path") {
  TempDir dir;
  std::string policy = dir.path + "/p.json";
  std::ofstream(policy) << "{}";
  REQUIRE(symlink(policy.c_str(), (dir.path + "/link.json").c_str()) == 0);
  std::string why;
  REQUIRE(domain_key("web", policy.c_str(), &why) == "name:web");
  REQUIRE(domain_key(nullptr, policy.c_str(), &why) == "policy:" + policy);
  REQUIRE(domain_key("", (dir.path + "/link.json").c_str(), &why) == "policy:" + policy);
  REQUIRE(domain_key(nullptr, nullptr, &why).empty());
  REQUIRE(why.empty());
  REQUIRE(domain_key("bad\nname", nullptr, &why).empty());
  REQUIRE(contains(why, "SOCKSHIM_DOMAIN"));
  REQUIRE(domain_key(nullptr, (dir.path + "/missing.json").c_str(), &why).empty());
  REQUIRE(contains(why, "missing.json"));
  REQUIRE(domain_dir("/run/x", "name:web") == domain_dir("/run/x", "name:web"));
  REQUIRE(domain_dir("/run/x", "name:web") != domain_dir("/run/x", "name:web2"));
  REQUIRE(domain_dir("/run/x", "name:web").rfind("/run/x/domain-", 0) == 0);
}

TEST_CASE("a new domain is a 0700 directory with a 0600 arena, whatever the umask") {
  TempDir dir;
  mode_t old = umask(0);
  std::string why;
  Domain* d = Domain::open(dir.path + "/d", "name:modes", &why);
  umask(old);
  REQUIRE(why == "");
  REQUIRE(d != nullptr);
  REQUIRE(mode_of(dir.path + "/d") == 0700);
  REQUIRE(mode_of(dir.path + "/d/arena") == 0600);
  delete d;
  // A second open maps the same arena, checked.
  d = Domain::open(dir.path + "/d", "name:modes", &why);
  REQUIRE(d != nullptr);
  delete d;
}

TEST_CASE("domain files open to others, of another user, or not what they seem are refused") {
  TempDir dir;
  std::string d = dir.path + "/d", why;
  delete Domain::open(d, "name:perm", &why);
  REQUIRE(why == "");
  SECTION("a group-readable directory") {
    chmod(d.c_str(), 0750);
    REQUIRE(Domain::open(d, "name:perm", &why) == nullptr);
    REQUIRE(contains(why, "mode 0750, open to other users (must be 0700)"));
  }
  SECTION("a world-writable arena") {
    chmod((d + "/arena").c_str(), 0666);
    REQUIRE(Domain::open(d, "name:perm", &why) == nullptr);
    REQUIRE(contains(why, "arena has mode 0666"));
  }
  SECTION("an arena that is a symlink") {
    rename((d + "/arena").c_str(), (d + "/real").c_str());
    REQUIRE(symlink((d + "/real").c_str(), (d + "/arena").c_str()) == 0);
    REQUIRE(Domain::open(d, "name:perm", &why) == nullptr);
    REQUIRE(contains(why, "cannot open " + d + "/arena"));
  }
  SECTION("a directory that is a file") {
    std::ofstream(dir.path + "/f") << "x";
    REQUIRE(Domain::open(dir.path + "/f", "name:perm", &why) == nullptr);
    REQUIRE(contains(why, "is not a directory"));
  }
  SECTION("an arena of another domain (a key hash collision)") {
    REQUIRE(Domain::open(d, "name:other", &why) == nullptr);
    REQUIRE(contains(why, "another domain key"));
  }
  SECTION("files another user owns") {
    if (geteuid() != 0) {
      WARN("not root: cannot make a file another user's; covered by domain_second_user");
      return;
    }
    REQUIRE(chown((d + "/arena").c_str(), 65534, 65534) == 0);
    REQUIRE(Domain::open(d, "name:perm", &why) == nullptr);
    REQUIRE(contains(why, "belongs to uid 65534, not to uid 0"));
    REQUIRE(chown(d.c_str(), 65534, 65534) == 0);
    REQUIRE(Domain::open(d, "name:perm", &why) == nullptr);
    REQUIRE(contains(why, d + " belongs to uid 65534"));
  }
}

TEST_CASE("a truncated arena fails closed at attach and after it, never faults") {
  TempDir dir;
  std::string d = dir.path + "/d", why;
  Domain* live = Domain::open(d, "name:trunc", &why);
  REQUIRE(live != nullptr);
  REQUIRE(live->join(getpid(), process_start_time(getpid()), "", "t") == 0);
  SECTION("to less than a header") {
    REQUIRE(truncate((d + "/arena").c_str(), 100) == 0);
    REQUIRE(Domain::open(d, "name:trunc", &why) == nullptr);
    REQUIRE(contains(why, "100 bytes, fewer than an arena's header (truncated)"));
  }
  SECTION("to half") {
    REQUIRE(truncate((d + "/arena").c_str(), kArenaFileSize / 2) == 0);
    REQUIRE(Domain::open(d, "name:trunc", &why) == nullptr);
    REQUIRE(contains(why, "the header says 4194304 bytes but the file has 2097152"));
    // The member that mapped it whole notices before touching it.
    std::vector<Member> out;
    REQUIRE(live->members(&out) == -EUCLEAN);
    REQUIRE(live->failed());
    REQUIRE(contains(live->why(), "not the 4194304 mapped (truncated or grown)"));
  }
  SECTION("scribbled header") {
    int fd = open((d + "/arena").c_str(), O_WRONLY);
    REQUIRE(pwrite(fd, "garbage!", 8, 0) == 8);
    close(fd);
    REQUIRE(Domain::open(d, "name:trunc", &why) == nullptr);
    REQUIRE(contains(why, "bad magic"));
    std::vector<Member> out;
    REQUIRE(live->members(&out) == -EUCLEAN);
    REQUIRE(contains(live->why(), "not a sockshim domain arena"));
  }
  delete live;
}
