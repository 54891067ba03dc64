#include "gossip/socket_monitor.h"

#include <cstring>

namespace starling::gossip {

zmq::socket_t monitor_socket(zmq::context_t& context, zmq::socket_t& watched,
                             const std::string& endpoint, int events) {
  if (zmq_socket_monitor(watched.handle(), endpoint.c_str(), events) != 0) {
    throw zmq::error_t();
  }
  zmq::socket_t monitor(context, zmq::socket_type::pair);
  monitor.set(zmq::sockopt::linger, 0);
  monitor.connect(endpoint);
  return monitor;
}

std::optional<std::uint16_t> next_monitor_event(zmq::socket_t& monitor) {
  while (true) {
    // An event is two frames: 6 bytes (the 16-bit id, a 32-bit value), then the address.
    zmq::message_t event;
    if (!monitor.recv(event, zmq::recv_flags::dontwait)) return std::nullopt;
    zmq::message_t address;
    if (event.more()) (void)monitor.recv(address, zmq::recv_flags::none);
    if (event.size() < sizeof(std::uint16_t)) continue;  // not an event: skip it
    std::uint16_t id = 0;
    std::memcpy(&id, event.data(), sizeof id);
    return id;
  }
}

}  // namespace starling::gossip
