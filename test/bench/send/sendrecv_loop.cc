// The loop callgrind_hot_path.py counts: N rounds of a 64-byte send on one
// end of a loopback TCP pair and a recv of it on the other, in one thread.
// Prints the count of send and recv calls it made (a short recv takes one
// more) on stdout as "sends N recvs M".
//
// usage: sendrecv_loop ROUNDS
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>

#include "test/support/loopback.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: sendrecv_loop ROUNDS\n");
    return 2;
  }
  const long rounds = std::strtol(argv[1], nullptr, 10);
  test_support::LoopbackPair pair;
  int one = 1;
  if (!pair.connect() || setsockopt(pair.c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
    std::perror("loopback pair");
    return 1;
  }
  char out[64] = {'x'}, in[64];
  long sends = 0, recvs = 0;
  for (long i = 0; i < rounds; ++i) {
    ++sends;
    if (send(pair.c, out, sizeof out, 0) != static_cast<ssize_t>(sizeof out)) {
      std::perror("send");
      return 1;
    }
    for (size_t got = 0; got < sizeof in;) {
      ++recvs;
      ssize_t r = recv(pair.p, in + got, sizeof in - got, 0);
      if (r <= 0) {
        std::perror("recv");
        return 1;
      }
      got += static_cast<size_t>(r);
    }
  }
  std::printf("sends %ld recvs %ld\n", sends, recvs);
  return 0;
}
