// One libbpf loader for every row of the bpf() conformance suite: opens the
// row's object (bpf_object__open_file), loads the row's programs
// (bpf_object__load), attaches them, makes the sockets, drives the traffic and
// prints the row's transcript (transcript.h). Run as root it uses the
// kernel's bpf(); as an ordinary user under the shim, the shim's.
//
// usage: bpf_rows_loader ROW OBJECT [--cgroup=new|own]
//        bpf_rows_loader --probe       exit 77 when bpf() refuses a sockmap
//        bpf_rows_loader --list        the rows, "NAME OBJECT" a line
// --cgroup=new (the kernel's side): make a cgroup v2 of this process's own
// below the one it is in, join it, attach sockops there, leave and remove it
// at exit. --cgroup=own (the shim's side): the cgroup v2 directory this
// process is in; any cgroup fd means "this process" under the shim.
// Exit status: 0 with a transcript, 2 when the row cannot be set up.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "rows.h"
#include "transcript.h"

namespace {

using bpfrows::call;
using bpfrows::line;
using bpfrows::setup_failed;

// Where cgroup v2 is mounted ("/sys/fs/cgroup" or, hybrid, ".../unified").
std::string cgroup2_mount() {
  std::ifstream mounts("/proc/self/mounts");
  std::string dev, dir, type, rest;
  while (mounts >> dev >> dir >> type && std::getline(mounts, rest))
    if (type == "cgroup2") return dir;
  errno = ENOENT;
  setup_failed("no cgroup2 mount");
}

// This process's cgroup v2 directory, from its "0::PATH" line.
std::string own_cgroup() {
  std::ifstream f("/proc/self/cgroup");
  std::string l;
  while (std::getline(f, l))
    if (l.rfind("0::", 0) == 0) return cgroup2_mount() + l.substr(3);
  errno = ENOENT;
  setup_failed("no cgroup v2 line in /proc/self/cgroup");
}

void join(const std::string& dir) {
  std::ofstream procs(dir + "/cgroup.procs");
  procs << getpid() << std::endl;
  if (!procs) setup_failed("joining " + dir);
}

// The cgroup a sockops row attaches to, and (new) the one to go back to.
struct Cgroup {
  int fd = -1;
  std::string made, parent;

  void open(bool make) {
    parent = own_cgroup();
    std::string dir = parent;
    if (make) {
      made = parent + (parent.back() == '/' ? "" : "/") + "sockshim-bpfrows-" +
             std::to_string(getpid());
      if (mkdir(made.c_str(), 0755)) setup_failed("mkdir " + made);
      join(made);
      dir = made;
    }
    fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) setup_failed("open " + dir);
  }
  ~Cgroup() {
    if (fd >= 0) close(fd);
    if (made.empty()) return;
    join(parent);
    if (rmdir(made.c_str())) std::fprintf(stderr, "rmdir %s: %s\n", made.c_str(), strerror(errno));
  }
};

const bpfrows::Row* find_row(const std::string& name) {
  for (const auto& r : bpfrows::rows())
    if (name == r.name) return &r;
  return nullptr;
}

int run(const bpfrows::Row& row, const char* path, const std::string& cgroup_mode) {
  Cgroup cgroup;
  if (row.cgroup) {
    if (cgroup_mode != "new" && cgroup_mode != "own") {
      std::fprintf(stderr, "bpf_rows_loader: row %s needs --cgroup=new or --cgroup=own\n",
                   row.name);
      return 2;
    }
    cgroup.open(cgroup_mode == "new");
  }
  line(std::string("row ") + row.name);
  bpf_object* obj = bpf_object__open_file(path, nullptr);
  if (!obj) {
    call("bpf_object__open_file", -1);
    return 0;
  }
  line("bpf_object__open_file: ok");
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    bool wanted = false;
    for (const char* p : row.programs) wanted = wanted || strcmp(p, bpf_program__name(prog)) == 0;
    bpf_program__set_autoload(prog, wanted);
  }
  if (call("bpf_object__load", bpf_object__load(obj)) == 0) {
    bpfrows::Ctx ctx{obj, cgroup.fd};
    row.run(ctx);
  }
  bpf_object__close(obj);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string first = argc > 1 ? argv[1] : "";
  if (first == "--list") {
    for (const auto& r : bpfrows::rows()) std::printf("%s %s\n", r.name, r.object);
    return 0;
  }
  if (first == "--probe") {
    const int fd = bpf_map_create(BPF_MAP_TYPE_SOCKMAP, nullptr, 4, 4, 1, nullptr);
    if (fd < 0) {
      std::printf("bpf(BPF_MAP_CREATE, SOCKMAP) refused: %s\n", strerror(errno));
      return 77;
    }
    close(fd);
    return 0;
  }
  const bpfrows::Row* row = argc >= 3 ? find_row(first) : nullptr;
  if (!row) {
    std::fprintf(stderr,
                 "usage: bpf_rows_loader ROW OBJECT [--cgroup=new|own] | --probe | --list\n");
    return 2;
  }
  std::string cgroup_mode;
  if (argc > 3 && strncmp(argv[3], "--cgroup=", 9) == 0) cgroup_mode = argv[3] + 9;
  return run(*row, argv[2], cgroup_mode);
}
