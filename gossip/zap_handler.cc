#include "gossip/zap_handler.h"

#include <spdlog/spdlog.h>

#include <stdexcept>
#include <utility>
#include <vector>

namespace starling::gossip {

ZapHandler::ZapHandler(zmq::context_t& context, std::map<std::string, std::string> admitted,
                       std::string server, std::string refusal)
    : socket_(context, zmq::socket_type::rep),
      admitted_(std::move(admitted)),
      server_(std::move(server)),
      refusal_(std::move(refusal)) {
  socket_.set(zmq::sockopt::linger, 0);
  socket_.bind("inproc://zeromq.zap.01");
}

std::string ZapHandler::binary_key(const std::string& z85) {
  std::string binary(32, '\0');
  if (z85.size() != 40 ||
      !zmq_z85_decode(reinterpret_cast<std::uint8_t*>(binary.data()), z85.c_str())) {
    throw std::invalid_argument("not a Z85 CURVE key: \"" + z85 + "\"");
  }
  return binary;
}

void ZapHandler::serve() {
  while (true) {
    std::vector<zmq::message_t> request;
    while (true) {
      zmq::message_t frame;
      if (!socket_.recv(frame, zmq::recv_flags::dontwait)) {
        if (request.empty()) return;  // nothing waiting
        break;                        // (a ZAP request arrives whole: cannot happen)
      }
      const bool more = frame.more();
      request.push_back(std::move(frame));
      if (!more) break;
    }
    auto text = [&](std::size_t i) {
      return i < request.size()
                 ? std::string(static_cast<const char*>(request[i].data()), request[i].size())
                 : std::string();
    };
    // Request frames: version, request id, domain, address, identity, mechanism, credentials.
    std::string status = "400", reason = "key not admitted", user;
    if (request.size() >= 7 && text(5) == "CURVE") {
      const std::string key = text(6);
      auto it = admitted_.find(key);
      if (it != admitted_.end()) {
        status = "200";
        reason = "OK";
        user = it->second;
      } else if (refused_.size() < kMaxLoggedKeys && refused_.insert(key).second) {
        char z85[41] = {};
        if (key.size() == 32) zmq_z85_encode(z85, reinterpret_cast<const std::uint8_t*>(key.data()), 32);
        spdlog::warn("{} refused a connection from {}: its CURVE key {} {}", server_, text(3), z85,
                     refusal_);
      }
    } else {
      reason = "only CURVE is accepted";
    }
    const std::string reply[] = {"1.0", text(1), status, reason, user, ""};
    for (std::size_t i = 0; i < 6; ++i) {
      socket_.send(zmq::buffer(reply[i]), i + 1 < 6 ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
}

}  // namespace starling::gossip
