// Another user's process never joins, reads or writes a domain: a child that
// became nobody (as `setpriv --reuid nobody` would make it) is refused with a
// sentence, does not crash, and leaves the domain as it was. Exits 77 (SKIP)
// when it cannot change user (not root).
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "core/domain/domain.h"

using namespace sockshim::domain;

namespace {

constexpr uid_t kNobody = 65534;

int fail(const std::string& what) {
  fprintf(stderr, "FAIL: %s\n", what.c_str());
  return 1;
}

}  // namespace

int main() {
  if (geteuid() != 0) {
    puts("SKIP: not root, cannot run a process as another user");
    return 77;
  }
  char tmpl[] = "/tmp/sockshim-second-user-XXXXXX";
  std::string runtime = mkdtemp(tmpl);
  std::string dir = domain_dir(runtime, "name:shared"), why;
  Domain* d = Domain::open(dir, "name:shared", &why);
  if (!d) return fail("root cannot open its own domain: " + why);
  d->join(getpid(), process_start_time(getpid()), "", "root");
  uint64_t generation = d->generation();

  int result = 0;
  pid_t pid = fork();
  if (pid == 0) {
    if (setgroups(0, nullptr) != 0 || setresgid(kNobody, kNobody, kNobody) != 0 ||
        setresuid(kNobody, kNobody, kNobody) != 0)
      _exit(77);
    // The same names, as nobody: the runtime dir is root's and 0700.
    Domain* other = Domain::open(dir, "name:shared", &why);
    if (other) _exit(1);
    printf("nobody was refused: %s\n", why.c_str());
    _exit(why.find("Permission denied") != std::string::npos ? 0 : 2);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 77) {
    puts("SKIP: cannot become nobody here");
    result = 77;
  } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    result = fail("nobody's attempt: status " + std::to_string(status));
  } else {
    std::vector<Member> members;
    if (d->members(&members) != 0 || members.size() != 1 || members[0].pid != getpid() ||
        d->generation() != generation)  // nothing reaped, nothing written
      result = fail("the domain changed after nobody's attempt");
    else
      puts("ok: nobody cannot open root's domain; it is unchanged");
  }
  delete d;
  std::error_code ec;
  std::filesystem::remove_all(runtime, ec);
  return result;
}
