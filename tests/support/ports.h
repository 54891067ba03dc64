#pragma once
// Ephemeral loopback ports for tests: the kernel picks a free port, we release it and hand it
// out. Another process could grab it in between; the window is tiny, which is good enough for
// tests. The kernel may hand a just-released port out again at once, so a port this process
// already handed out is never handed out twice (two nodes of one cluster would share it).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <set>
#include <stdexcept>
#include <string>

namespace starling::testing {

inline int kernel_free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::runtime_error("bind failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  int port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

inline int free_tcp_port() {
  static std::mutex mutex;
  static std::set<int> handed_out;
  std::lock_guard lock(mutex);
  for (int attempt = 0; attempt < 100; ++attempt) {
    int port = kernel_free_tcp_port();
    if (handed_out.insert(port).second) return port;
  }
  throw std::runtime_error("no fresh free port after 100 attempts");
}

inline std::string loopback_endpoint() {
  return "tcp://127.0.0.1:" + std::to_string(free_tcp_port());
}

}  // namespace starling::testing
