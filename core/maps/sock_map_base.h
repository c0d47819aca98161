// What SOCKMAP and SOCKHASH share (net/core/sock_map.c): the map's programs and
// their attach rules, linking a socket's psock to a slot (sock_map_link), and
// releasing a slot (sock_map_unref). sock_map_close removes a socket from every
// map when its last reference goes.
#pragma once

#include <atomic>
#include <mutex>

#include "core/domain/domain_maps.h"
#include "core/maps/bpf_map.h"
#include "core/psock/psock.h"

namespace sockshim {

class Socket;

// The programs attached to a map (the map's struct sk_psock_progs).
struct MapProgs {
  const policy::Program* msg_parser = nullptr;
  const policy::Program* stream_parser = nullptr;
  const policy::Program* stream_verdict = nullptr;
  const policy::Program* skb_verdict = nullptr;
};

class SockMapBase : public BpfMap {
 public:
  using BpfMap::BpfMap;

  // BPF_PROG_ATTACH / BPF_PROG_DETACH (sock_map_prog_update): EBUSY for a
  // stream verdict while the map has an skb verdict or the reverse; attach
  // replaces silently; detach of a program that is not the attached one -> ENOENT.
  // Sockets already in the map keep the programs they were inserted with.
  int prog_attach(const policy::Program* prog, policy::AttachType which) noexcept;
  int prog_detach(const policy::Program* prog, policy::AttachType which) noexcept;
  MapProgs progs() const noexcept;

  // Inserts sk at key (sock_{map,hash}_update_common): the path after the
  // socket checks, shared by user space and by programs (sockops). The caller
  // holds a reference on sk and sk->lock(); fd is one of sk's fds, or -1.
  int update_common(const void* key, Socket* sk, uint64_t flags, int fd) noexcept;

  // The socket at key and its cookie, or null. The returned psock carries a
  // reference.
  virtual PsockRef lookup_psock(const void* key) noexcept = 0;
  // The same for a redirect: in a map of the domain, an entry another
  // process replaced or deleted since this process made it is stale and
  // goes (the kernel has one map); a socket only another process holds is
  // not here (null), see docs/domains.md.
  PsockRef lookup_redirect(const void* key) noexcept;

  // An exec'd image: fd goes back in at key, as before the exec (the domain
  // kept the entry). 0 or -errno, as update_sys.
  int readopt(const void* key, int fd) noexcept;

  // Removes psock from the slot behind link if it still holds it
  // (sock_map_unlink, from sock_map_close).
  virtual void unlink(Psock* psock, const PsockLink& link) noexcept = 0;

  // Entries in the map.
  virtual uint32_t count() const noexcept = 0;

  int update_sys(const void* key, const void* value, uint64_t flags) noexcept override;
  void after_fork_child() noexcept override;

  // A map of the policy: its entries are recorded in the process's domain
  // (core/domain/domain_maps.h), by the process that makes each change.
  void share_in_domain() noexcept { shared_ = true; }
  // The cookie of the socket at key in the domain's copy of this map (another
  // process's socket too), or 0: what a redirect finds when this process's
  // map has nothing at key.
  uint64_t shared_lookup(const void* key) noexcept;

 protected:
  // update_common's work, in the map's own structure.
  virtual int update_elem(const void* key, Socket* sk, uint64_t flags, int fd) noexcept = 0;

  // After the map's own change, outside its lock: the domain's table follows
  // (an insertion through fd; a delete of the socket cookie at key).
  void shared_update(const void* key, uint64_t cookie, int fd) noexcept;
  void shared_delete(const void* key, uint64_t cookie) noexcept;

  // sock_map_link: finds or creates sk's psock, refuses role conflicts (EBUSY),
  // copies the map's programs into it. On success *out carries a new reference.
  int link(Socket* sk, int fd, Psock** out) noexcept;
  // sk_psock_init_link: the link an insertion adds, made before the insertion
  // takes any lock or reference, so that short of memory it fails with -ENOMEM
  // having changed nothing. *out holds one unset node.
  static int init_link(PsockLinks* out) noexcept;
  // sock_map_add_link, under the map (or bucket) lock: sets the node from
  // init_link and moves it into psock's links (no allocation).
  void add_link(Psock* psock, PsockLinks& link, const void* link_raw, uint32_t hash) noexcept;
  // sock_map_unref: unlinks the slot from psock (stopping its receive hooks
  // when the map has receive programs) and drops the slot's reference.
  void unref(Psock* psock, const void* link_raw) noexcept;

  // A map being freed waits for sock_map_close calls that took one of its
  // links and have not yet unlinked it.
  void wait_unlinkers() const noexcept;

 private:
  friend void sock_map_close(Socket* sk) noexcept;
  mutable std::mutex progs_lock_;
  MapProgs progs_;
  // A domain generation step of this process's own change: a map that was in
  // step with the domain before it still is.
  void follow(domain::MapGenStep step) noexcept;
  // The entry at key checked against the domain's (the slow path of
  // lookup_redirect); a stale one is deleted here.
  PsockRef checked_lookup(const void* key, PsockRef local) noexcept;

  bool shared_ = false;
  std::atomic<uint32_t> unlinkers_{0};
  // The domain map's generation word once known, and the generation at which
  // every local entry was known to match the domain's (kNotSynced: none).
  static constexpr uint64_t kNotSynced = ~uint64_t{0};
  std::atomic<const uint32_t*> gen_word_{nullptr};
  std::atomic<uint64_t> synced_{kNotSynced};
  // Insertions of this process between the local change and the domain's:
  // meanwhile a local entry the domain lacks is new, not stale.
  std::atomic<uint32_t> updating_{0};
};

// The socket's last reference went (the kernel's last fput): remove it from
// every map and drop its psock (sock_map_close).
void sock_map_close(Socket* sk) noexcept;

}  // namespace sockshim
