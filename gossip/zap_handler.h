#pragma once
// ZapHandler: ZeroMQ's authentication hook (ZAP, RFC 27) for the CURVE servers of one context.
// libzmq asks it about every CURVE handshake; without one, a CURVE server admits any key. It
// admits a client whose public key is listed, as the name listed with it (the User-Id of the
// client's messages), and refuses every other key and every other mechanism. Each refused key
// is logged once, at most kMaxLoggedKeys of them: a stream of random keys must not grow
// memory or the log.
//
// Not thread-safe: the thread that polls socket() calls serve(), as ZeroMQ sockets require.
#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <zmq.hpp>

namespace starling::gossip {

class ZapHandler {
 public:
  static constexpr std::size_t kMaxLoggedKeys = 64;

  // Binds `context`'s ZAP endpoint (one handler per context, before any CURVE server binds).
  // admitted: binary 32-byte public key -> the name its client is known by. server: what the
  // log says was connected to; refusal: why a key is refused ("is not another node's key in
  // the cluster file").
  ZapHandler(zmq::context_t& context, std::map<std::string, std::string> admitted,
             std::string server, std::string refusal);

  zmq::socket_t& socket() { return socket_; }  // to poll for requests
  void serve();  // answers every request waiting; never blocks

  // A Z85 public key (40 characters) as its 32 bytes; throws std::invalid_argument if it is not.
  static std::string binary_key(const std::string& z85);

 private:
  zmq::socket_t socket_;
  std::map<std::string, std::string> admitted_;
  std::set<std::string> refused_;
  std::string server_;
  std::string refusal_;
};

}  // namespace starling::gossip
