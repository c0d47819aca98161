#include "core/sock/tcp_stream_bytes.h"

#include <errno.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstddef>

#include "core/sock/errno_saver.h"
#include "core/sock/real.h"

namespace sockshim {
namespace {

// include/net/tcp_states.h: the states after a FIN came in.
enum : uint8_t { kTimeWait = 6, kCloseWait = 8, kLastAck = 9, kClosing = 11 };

int tcp_info_of(int fd, tcp_info* ti) noexcept {
  socklen_t len = sizeof *ti;
  if (real::getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &len) != 0) return -errno;
  // Older kernels fill less; the byte counters came with 4.19.
  if (len < offsetof(tcp_info, tcpi_bytes_retrans) + sizeof ti->tcpi_bytes_retrans) return -ENOTSUP;
  return 0;
}

}  // namespace

int tcp_bytes_written(int fd, uint64_t* out) noexcept {
  ErrnoSaver saved;
  tcp_info ti{};
  if (int r = tcp_info_of(fd, &ti)) return r;
  // One snapshot, taken under the socket's lock: what went out once, plus
  // what waits to. (bytes_acked + SIOCOUTQ would need two calls, and counts
  // the SYN of the end that connected.)
  *out = ti.tcpi_bytes_sent - ti.tcpi_bytes_retrans + ti.tcpi_notsent_bytes;
  return 0;
}

int tcp_bytes_taken(int fd, uint64_t* out) noexcept {
  ErrnoSaver saved;
  tcp_info ti{};
  if (int r = tcp_info_of(fd, &ti)) return r;
  // Asked after the snapshot: bytes arriving in between only make the
  // result smaller than the truth, never larger.
  int queued = 0;
  if (real::ioctl(fd, SIOCINQ, reinterpret_cast<unsigned long>(&queued)) != 0) return -errno;
  // bytes_received counts a received FIN; SIOCINQ does not.
  const bool fin = ti.tcpi_state == kCloseWait || ti.tcpi_state == kLastAck ||
                   ti.tcpi_state == kClosing || ti.tcpi_state == kTimeWait;
  const uint64_t received = ti.tcpi_bytes_received - (fin ? 1 : 0);
  *out = received > static_cast<uint64_t>(queued) ? received - static_cast<uint64_t>(queued) : 0;
  return 0;
}

}  // namespace sockshim
