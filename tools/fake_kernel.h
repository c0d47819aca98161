// FakeKernel: Helpers over fake sockets and in-memory maps, with the kernel's
// return values. `sockshim test-run`, the unit tests, the fuzzers and the
// benchmark run programs against it; core has its own Helpers for real sockets.
// It lives with the tool, not in the policy library that libsockshim.so links;
// it implements policy::Helpers, and keeps that namespace.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "policy/helpers.h"
#include "policy/policy.h"

namespace sockshim::policy {

class FakeKernel : public Helpers {
 public:
  // Socket 0 is the one programs run on ("self").
  explicit FakeKernel(const Policy& policy, std::string self_name = "self");

  // A fake socket; returns its id.
  uint32_t add_socket(std::string name);
  const std::string& socket_name(uint32_t id) const { return sockets_.at(id); }

  // A map in auto mode (the default) answers every redirect lookup with a fake
  // socket named after the key (format_key), so a test-run shows where bytes would go. After
  // set_entries it holds exactly what was set and a missing key drops.
  void clear_map(uint32_t map);
  long insert(uint32_t map, std::vector<uint8_t> key, uint32_t socket, uint64_t flags);

  struct RedirectRecord {
    uint32_t map = 0;
    std::vector<uint8_t> key;
    uint64_t flags = 0;
    std::string target;
  };
  // The last successful redirect of the run (msg->sk_redir), if any.
  const std::optional<RedirectRecord>& redirect_target() const { return redirect_; }
  void reset_run() {
    redirect_.reset();
    log_.clear();
  }
  const std::vector<std::string>& log_lines() const { return log_; }

  // Storage of the current socket in an sk_storage map (empty when none).
  std::vector<uint8_t>* storage(uint32_t map);
  // Entries of a sockmap/sockhash: key bytes -> socket id.
  const std::map<std::vector<uint8_t>, uint32_t>& entries(uint32_t map) const {
    return maps_.at(map).entries;
  }

  int redirect(uint32_t map, std::span<const uint8_t> key, uint64_t flags) override;
  uint8_t* storage_get(uint32_t map, bool create) override;
  long storage_delete(uint32_t map) override;
  long map_update(uint32_t map, std::span<const uint8_t> key, uint64_t flags) override;
  long map_delete(uint32_t map, std::span<const uint8_t> key) override;
  void log(const Program& program, std::string_view text) override;
  const MapSpec* map_spec(uint32_t map) override;
  // Socket 0's cookie: a fixed value, as a fake socket has no kernel one.
  uint64_t socket_cookie() override { return kSelfCookie; }
  static constexpr uint64_t kSelfCookie = 4096;

 private:
  struct FakeMap {
    bool auto_entries = true;
    std::map<std::vector<uint8_t>, uint32_t> entries;
    std::optional<std::vector<uint8_t>> storage;  // sk_storage: socket 0's value
  };

  const Policy& policy_;
  std::vector<std::string> sockets_;
  std::vector<FakeMap> maps_;
  std::optional<RedirectRecord> redirect_;
  std::vector<std::string> log_;
};

// "MAP[0]" for a sockmap; "MAP{local_ip4=127.0.0.1, local_port=80, ...}" for a sockhash.
std::string format_key(const MapSpec& map, std::span<const uint8_t> key);

}  // namespace sockshim::policy
