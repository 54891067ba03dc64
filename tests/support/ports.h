#pragma once
// Loopback ports for tests, below the kernel's ephemeral range: a port is picked at random
// from [20000, 32768), tried by binding it, released and handed out. Another process could
// take it in between; the window is tiny. Ports the kernel picks itself (bind to port 0, as
// every node's ring-link listener does) come from the ephemeral range, 32768 and up by
// default, so a node's listener can never take a port a test chose for another node before
// that node starts (a test once failed so: "cannot bind its data endpoint"). A port this
// process already handed out is never handed out twice (two nodes of one cluster would share
// it).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <string>

namespace starling::testing {

// Whether `port` can be bound on loopback now.
inline bool loopback_port_is_free(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return free;
}

inline int free_tcp_port() {
  constexpr int kLowest = 20000, kEnd = 32768;  // below the ephemeral range
  static std::mutex mutex;
  static std::set<int> handed_out;
  static std::mt19937 rng(std::random_device{}());
  std::lock_guard lock(mutex);
  std::uniform_int_distribution<int> pick(kLowest, kEnd - 1);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = pick(rng);
    if (handed_out.count(port) || !loopback_port_is_free(port)) continue;
    handed_out.insert(port);
    return port;
  }
  throw std::runtime_error("no free loopback port below 32768 after 1000 attempts");
}

inline std::string loopback_endpoint() {
  return "tcp://127.0.0.1:" + std::to_string(free_tcp_port());
}

}  // namespace starling::testing
