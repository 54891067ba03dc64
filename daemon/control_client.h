#pragma once
// Asking nodes over their control sockets, concurrently, with one deadline for all: a node that
// does not answer in time is reported unreachable; nothing here ever blocks past the deadline.
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace starling::daemon {

struct ControlResult {
  bool answered = false;
  nlohmann::json reply;  // when answered
  std::string error;     // when not: why
};

// CURVE for the endpoints that need it (README "Security"): the client's key pair, and per
// endpoint the server's public key (empty: a plain endpoint). All keys Z85.
struct ControlClientCurve {
  std::string public_key;
  std::string secret_key;
  std::vector<std::string> server_keys;  // one per endpoint
};

// A node whose CURVE handshake refuses the client's key is reported as refusing it, at once.
std::vector<ControlResult> query_nodes(const std::vector<std::string>& endpoints,
                                       const nlohmann::json& request,
                                       std::chrono::milliseconds timeout,
                                       const ControlClientCurve* curve = nullptr);

ControlResult query_node(const std::string& endpoint, const nlohmann::json& request,
                         std::chrono::milliseconds timeout,
                         const ControlClientCurve* curve = nullptr);

}  // namespace starling::daemon
