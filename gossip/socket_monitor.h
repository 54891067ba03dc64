#pragma once
// ZeroMQ socket monitors (zmq_socket_monitor): what a socket's connections do, as events read
// from a PAIR socket. Used for connections that fail the handshake (the inbox), close (a
// peer's process is gone) or are refused a CURVE key (starlingctl).
#include <cstdint>
#include <optional>
#include <string>
#include <zmq.hpp>

namespace starling::gossip {

// Starts monitoring `watched` for `events` (ZMQ_EVENT_* bits) at the inproc `endpoint` (unique
// within `context`) and returns the PAIR socket the events arrive on. Call it before
// `watched` connects or binds, so that no event is missed. Throws zmq::error_t.
zmq::socket_t monitor_socket(zmq::context_t& context, zmq::socket_t& watched,
                             const std::string& endpoint, int events);

// The next event's id (its ZMQ_EVENT_* bit), or nullopt when none is waiting. Never blocks.
std::optional<std::uint16_t> next_monitor_event(zmq::socket_t& monitor);

}  // namespace starling::gossip
