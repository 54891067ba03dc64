#pragma once
// ZeroMQ sockets speak IPv4 only unless ZMQ_IPV6 is set, and fail to bind or connect to an
// IPv6 address ("No such device"). The cluster file accepts bracketed IPv6 literals
// (tcp://[::1]:7000), so a socket that binds or connects to one gets the option. Only such a
// socket: with it set everywhere, a host name such as "localhost" could resolve to ::1 on one
// side and to 127.0.0.1 on the other.
#include <string>
#include <zmq.hpp>

#include "topology/cluster_file.h"

namespace starling::gossip {

inline bool is_ipv6_literal_endpoint(const std::string& endpoint) {
  const auto host = topology::tcp_endpoint_host(endpoint);
  return host && !host->empty() && host->front() == '[';
}

// Call before the socket binds or connects to `endpoint`.
inline void enable_ipv6_for(zmq::socket_t& socket, const std::string& endpoint) {
  if (is_ipv6_literal_endpoint(endpoint)) socket.set(zmq::sockopt::ipv6, 1);
}

}  // namespace starling::gossip
