// How far a TCP socket's byte stream has gone, as the kernel counts it
// (TCP_INFO): the bytes the program wrote to it, sent or still queued, and the
// bytes its readers have taken from it. Both count data only (no SYN, no FIN),
// so one end's written bytes are the other end's taken ones once all are read.
#pragma once

#include <cstdint>

namespace sockshim {

// 0, or -errno (not a TCP socket, or no TCP_INFO).
int tcp_bytes_written(int fd, uint64_t* out) noexcept;
int tcp_bytes_taken(int fd, uint64_t* out) noexcept;

}  // namespace sockshim
