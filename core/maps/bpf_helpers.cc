#include "core/maps/bpf_helpers.h"

#include <errno.h>
#include <netinet/in.h>

#include <cstring>
#include <mutex>
#include <new>

#include "core/domain/domain.h"
#include "core/domain/sock_ring.h"
#include "core/maps/array_map.h"
#include "core/maps/hash_map.h"
#include "core/maps/sk_storage.h"
#include "core/maps/sock_map_base.h"
#include "core/psock/psock.h"
#include "core/sock/log.h"
#include "core/sock/sock_query.h"
#include "core/sock/tcp_stream_bytes.h"

namespace sockshim {
namespace {

// sock_map_redirect_allowed: never to a TCP listener; other protocols only
// when connected.
bool redirect_allowed(Socket& target) noexcept {
  std::lock_guard g(target.lock());
  if (sock_kind(target) == SockKind::tcp) return target.state != TcpState::listen;
  return target.remote.len > 0;
}

// A socket's first redirect into its TCP peer's ring in another process
// tells the ring how many bytes the socket wrote by TCP until then: the
// peer's reader takes those from its socket before the ring's first byte, so
// the stream keeps its order across the switch.
void tell_tcp_written(Socket* sk, int fd, domain::SockRing& ring) noexcept {
  PsockRef p = psock_get(sk);
  if (!p || fd < 0 || p->ring_tcp_told.load(std::memory_order_relaxed)) return;
  uint64_t written = 0;
  if (tcp_bytes_written(fd, &written) != 0) return;
  SockAddr local, remote;
  kernel_addresses(fd, &local, &remote);
  if (ring.tell_tcp_written(local, remote, written))
    p->ring_tcp_told.store(true, std::memory_order_relaxed);
}

}  // namespace

policy::SocketTuple socket_tuple(Socket& s) noexcept {
  policy::SocketTuple t;
  t.family = static_cast<uint32_t>(s.family);
  t.type = static_cast<uint32_t>(s.type);
  t.protocol = static_cast<uint32_t>(s.protocol);
  std::lock_guard g(s.lock());
  auto fill = [&](const SockAddr& a, uint32_t* ip4, std::array<uint8_t, 16>* ip6, uint16_t* port) {
    if (a.addr.ss_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&a.addr);
      *ip4 = in->sin_addr.s_addr;
      *port = ntohs(in->sin_port);
    } else if (a.addr.ss_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.addr);
      memcpy(ip6->data(), &in6->sin6_addr, 16);
      *port = ntohs(in6->sin6_port);
    }
  };
  fill(s.local, &t.local_ip4, &t.local_ip6, &t.local_port);
  fill(s.remote, &t.remote_ip4, &t.remote_ip6, &t.remote_port);
  return t;
}

int SockHelpers::redirect(uint32_t map, std::span<const uint8_t> key, uint64_t flags) {
  redirect_.reset();
  remote_ = 0;
  auto* m =
      map < lp_.map_by_index.size() ? dynamic_cast<SockMapBase*>(lp_.map_by_index[map]) : nullptr;
  if (!m || (flags & ~policy::BPF_F_INGRESS) || key.size() != m->key_size()) return policy::SK_DROP;
  bool ingress = flags & policy::BPF_F_INGRESS;
  PsockRef target = m->lookup_redirect(key.data());
  if (!target && ingress && type_ == policy::ProgramType::sk_msg) {
    // Held by another process of the domain only: into its shared ring, once
    // a holder has attached it (until then the redirect fails, as to a
    // socket in no map).
    if (uint64_t cookie = m->shared_lookup(key.data())) {
      domain::Domain* d = domain::own_domain();
      domain::SockRing* ring = d ? domain::SockRing::peer(*d, cookie) : nullptr;
      if (!ring) return policy::SK_DROP;
      tell_tcp_written(sk_, fd_, *ring);
      remote_ = cookie;
      ingress_ = true;
      return policy::SK_PASS;
    }
  }
  if (!target || !redirect_allowed(*target->sk())) return policy::SK_DROP;
  // bpf_msg_redirect_*: egress only to TCP; the skb helpers may leave by any.
  if (type_ == policy::ProgramType::sk_msg && !ingress && sock_kind(*target->sk()) != SockKind::tcp)
    return policy::SK_DROP;
  redirect_ = std::move(target);
  ingress_ = ingress;
  return policy::SK_PASS;
}

uint8_t* SockHelpers::storage_get(uint32_t map, bool create) {
  auto* m =
      map < lp_.map_by_index.size() ? dynamic_cast<SkStorage*>(lp_.map_by_index[map]) : nullptr;
  return m ? m->get(sk_, create, nullptr) : nullptr;
}

long SockHelpers::storage_delete(uint32_t map) {
  auto* m =
      map < lp_.map_by_index.size() ? dynamic_cast<SkStorage*>(lp_.map_by_index[map]) : nullptr;
  return m ? m->remove(sk_) : -EINVAL;
}

long SockHelpers::map_update(uint32_t map, std::span<const uint8_t> key, uint64_t flags) {
  auto* m =
      map < lp_.map_by_index.size() ? dynamic_cast<SockMapBase*>(lp_.map_by_index[map]) : nullptr;
  if (!m || key.size() != m->key_size()) return -EINVAL;
  // bpf_sock_map_update: a protocol without psock support is refused; the
  // socket's state is not checked (the op already says what it is).
  if (!sock_map_sk_is_suitable(*sk_)) return -EOPNOTSUPP;
  std::lock_guard g(sk_->lock());
  return m->update_common(key.data(), sk_, flags, fd_);
}

// The maps programs delete from: sock maps (sockops), HASH (its delete) and
// ARRAY (-EINVAL, arrays keep every element).
long SockHelpers::map_delete(uint32_t map, std::span<const uint8_t> key) {
  BpfMap* m = map < lp_.map_by_index.size() ? lp_.map_by_index[map] : nullptr;
  if (!m || m->type() == policy::MapType::sk_storage || key.size() != m->key_size()) return -EINVAL;
  return m->delete_sys(key.data());
}

uint8_t* SockHelpers::map_lookup(uint32_t map, std::span<const uint8_t> key) {
  BpfMap* m = map < lp_.map_by_index.size() ? lp_.map_by_index[map] : nullptr;
  if (!m || key.size() != m->key_size()) return nullptr;
  if (m->type() == policy::MapType::array)
    return static_cast<ArrayMap*>(m)->value(read_index(key.data()));
  if (m->type() == policy::MapType::hash) return static_cast<HashMap*>(m)->value(key.data());
  return nullptr;
}

// array_map_update_elem and htab_map_update_elem, as from user space but
// without the syscall's checks (a frozen map stays writable by programs).
long SockHelpers::map_update_value(uint32_t map, std::span<const uint8_t> key, const uint8_t* value,
                                   uint64_t flags) {
  BpfMap* m = map < lp_.map_by_index.size() ? lp_.map_by_index[map] : nullptr;
  if (!m || key.size() != m->key_size() ||
      (m->type() != policy::MapType::array && m->type() != policy::MapType::hash))
    return -EINVAL;
  if (flags & BPF_F_LOCK) return -EINVAL;  // no map here has a bpf_spin_lock
  return m->update_sys(key.data(), value, flags);
}

const policy::MapSpec* SockHelpers::map_spec(uint32_t map) {
  return map < lp_.map_by_index.size() ? &lp_.map_by_index[map]->spec() : nullptr;
}

// At warn, the default level: the policy asked for this line, so it shows
// unless the user turns logging down to errors. The socket is named by its
// addresses and cookie, as dump shows it, and by the fd the program runs
// for when there is one (a close runs when no fd is left).
void SockHelpers::log(const policy::Program& program, std::string_view text) {
  try {
    SockAddr local, remote;
    {
      std::lock_guard g(sk_->lock());
      local = sk_->local;
      remote = sk_->remote;
    }
    const std::string l = format_address(local), r = format_address(remote);
    const std::string fd = fd_ >= 0 ? ", fd " + std::to_string(fd_) : "";
    log::warn("log: {}: {} (socket {} -> {}, cookie {}{})", program.name(), text,
              l.empty() ? "-" : l, r.empty() ? "-" : r, sk_->cookie, fd);
  } catch (const std::bad_alloc&) {
    // The line is lost; the program's run is not.
  }
}

}  // namespace sockshim
