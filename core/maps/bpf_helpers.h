// The kernel helpers a program calls (net/core/filter.c, sock_map.c,
// bpf_sk_storage.c), acting on real sockets: core's policy::Helpers. One object
// serves one run of a program on one socket.
#pragma once

#include <utility>

#include "core/maps/loaded_policy.h"
#include "core/psock/psock.h"
#include "core/sock/socket.h"
#include "policy/helpers.h"
#include "policy/program.h"

namespace sockshim {

class SockHelpers final : public policy::Helpers {
 public:
  // sk is the socket the program runs on (the caller holds a reference), fd one
  // of its fds or -1.
  SockHelpers(const LoadedPolicy& lp, policy::ProgramType type, Socket* sk, int fd) noexcept
      : lp_(lp), type_(type), sk_(sk), fd_(fd) {}

  int redirect(uint32_t map, std::span<const uint8_t> key, uint64_t flags) override;
  uint8_t* storage_get(uint32_t map, bool create) override;
  long storage_delete(uint32_t map) override;
  long map_update(uint32_t map, std::span<const uint8_t> key, uint64_t flags) override;
  long map_delete(uint32_t map, std::span<const uint8_t> key) override;
  uint8_t* map_lookup(uint32_t map, std::span<const uint8_t> key) override;
  long map_update_value(uint32_t map, std::span<const uint8_t> key, const uint8_t* value,
                        uint64_t flags) override;
  void log(const policy::Program& program, std::string_view text) override;
  const policy::MapSpec* map_spec(uint32_t map) override;
  uint64_t socket_cookie() override { return sk_->cookie; }

  // The target a verdict run chose (msg->sk_redir, skb redirect), with its
  // reference; empty when the run redirected nowhere.
  PsockRef take_redirect() noexcept { return std::move(redirect_); }
  bool redirect_ingress() const noexcept { return ingress_; }
  // A redirect to a socket only another process of the domain holds: its
  // cookie (an sk_msg BPF_F_INGRESS redirect into its shared ring), or 0.
  uint64_t take_remote() noexcept { return std::exchange(remote_, 0); }

 private:
  const LoadedPolicy& lp_;
  policy::ProgramType type_;
  Socket* sk_;
  int fd_;
  PsockRef redirect_;
  bool ingress_ = false;
  uint64_t remote_ = 0;
};

// The socket's identity as programs see it, from the addresses the shim holds.
policy::SocketTuple socket_tuple(Socket& s) noexcept;

}  // namespace sockshim
