// TCP over 127.0.0.1 for the C++ suites.
#pragma once

namespace test_support {

// Bytes the kernel holds unread at the other end of fd, a connected TCP
// socket on 127.0.0.1 (its rx_queue in /proc/net/tcp), or -1 when that end
// is not found: for an end this process cannot ask, one it closed that a
// child still reads.
long peer_rx_queue(int fd);

}  // namespace test_support
