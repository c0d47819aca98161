// Short of memory, an insertion fails with ENOMEM as the kernel's does
// (sk_psock_init_link, sk_psock_init) and leaves nothing half-done: no entry,
// no psock, no link, the socket as it was; queueing bytes fails the same way.
// Each case runs the operation once per allocation it makes, failing that
// allocation (test/unit/maps/failing_alloc.h): every one must fail cleanly,
// never terminate the process, and the operation must succeed once memory is
// there.
#include <errno.h>

#include <catch2/catch.hpp>
#include <string>

#include "core/psock/psock.h"
#include "core/psock/sk_msg_queue.h"
#include "core/sock/registry.h"
#include "core/sock/socket.h"
#include "shim/sockshim.h"
#include "test/unit/maps/failing_alloc.h"
#include "test/unit/maps/maps_test_util.h"

using namespace maps_test;
using failing_alloc::FailAfter;

namespace {

sockshim::Psock* psock_of(int fd) {
  sockshim::SocketRef r = sockshim::registry::get(fd);
  return r ? r->psock.load() : nullptr;
}

size_t links_of(sockshim::Psock* p) {
  std::lock_guard g(p->link_lock);
  return p->links.size();
}

// Inserts fd at key 0 of m with its n-th allocation failing, for n = 0, 1, ...
// until it succeeds; each failure must be ENOMEM and change nothing. Returns
// how many failed.
int insert_failing_each_allocation(BpfMap& m, int fd) {
  sockshim::Psock* had = psock_of(fd);
  const uint32_t refs = had ? had->refcnt() : 0;
  const size_t links = had ? links_of(had) : 0;
  const uint64_t psocks = sockshim::psock_count();
  for (int n = 0;; ++n) {
    INFO("allocation " << n << " fails");
    int r;
    {
      FailAfter f(n);
      r = update(m, 0, static_cast<uint64_t>(fd));
    }
    if (r == 0) {
      CHECK(lookup_cookie(m, 0) == sockshim::socket_cookie(fd));
      return n;
    }
    REQUIRE(r == -ENOMEM);
    CHECK(lookup_cookie(m, 0) == 0);
    CHECK(psock_of(fd) == had);
    CHECK(sockshim::psock_count() == psocks);
    if (had) {
      CHECK(had->refcnt() == refs);
      CHECK(links_of(had) == links);
    }
    REQUIRE(n < 100);
  }
}

}  // namespace

TEST_CASE("an insertion short of memory fails with ENOMEM and changes nothing", "[nomem]") {
  auto t = make_table({sockmap_spec("m", 4), sockhash_spec("h", 4), sockmap_spec("other", 4)});
  REQUIRE(t);
  for (const char* name : {"m", "h"}) {
    BpfMap& m = *t->find(name);
    INFO("map " << name);
    SECTION(std::string("a socket without a psock, into ") + name) {
      UnixPair p;
      // The psock, its side state and the link are each allocated.
      CHECK(insert_failing_each_allocation(m, p.a) >= 1);
      sockshim::Psock* ps = psock_of(p.a);
      REQUIRE(ps);
      CHECK(ps->refcnt() == 1);
      CHECK(links_of(ps) == 1);
      CHECK(del(m, 0) == 0);
      CHECK(psock_of(p.a) == nullptr);
    }
    SECTION(std::string("a socket already in another map, into ") + name) {
      UnixPair p;
      BpfMap& other = *t->find("other");
      REQUIRE(update(other, 1, p.a) == 0);
      CHECK(insert_failing_each_allocation(m, p.a) >= 1);
      sockshim::Psock* ps = psock_of(p.a);
      CHECK(ps->refcnt() == 2);
      CHECK(links_of(ps) == 2);
      CHECK(del(m, 0) == 0);
      CHECK(del(other, 1) == 0);
      CHECK(psock_of(p.a) == nullptr);
    }
  }
}

TEST_CASE("queueing bytes short of memory queues nothing", "[nomem]") {
  auto t = make_table({sockmap_spec("m", 2)});
  BpfMap& m = *t->find("m");
  UnixPair p;
  REQUIRE(update(m, 0, p.a) == 0);
  sockshim::SocketRef s = sockshim::registry::get(p.a);
  sockshim::PsockRef ps = sockshim::psock_get(s.get());
  REQUIRE(ps);
  const uint8_t bytes[] = {'a', 'b', 'c'};
  int failed = 0;
  for (int n = 0;; ++n) {
    INFO("allocation " << n << " fails");
    size_t moved;
    {
      FailAfter f(n);
      moved = sockshim::sk_psock_ingress_push(ps.get(), bytes);
    }
    if (moved == sizeof bytes) break;
    CHECK(moved == 0);
    CHECK(sockshim::sk_psock_msg_inq(ps.get()) == 0);
    ++failed;
    REQUIRE(n < 100);
  }
  CHECK(failed >= 2);  // the bytes and the queue's node
  CHECK(sockshim::sk_psock_msg_inq(ps.get()) == sizeof bytes);
  sockshim::SkMsgBytes d{'d'};
  int r;
  {
    FailAfter f(0);
    r = sockshim::sk_psock_queue_bytes(ps.get(), std::move(d));
  }
  CHECK(r == -ENOMEM);
  CHECK(sockshim::sk_psock_msg_inq(ps.get()) == sizeof bytes);
  CHECK(sockshim::sk_psock_queue_bytes(ps.get(), {'d'}) == 0);
  CHECK(sockshim::sk_psock_msg_inq(ps.get()) == sizeof bytes + 1);
}
