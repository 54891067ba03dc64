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

std::vector<ControlResult> query_nodes(const std::vector<std::string>& endpoints,
                                       const nlohmann::json& request,
                                       std::chrono::milliseconds timeout);

ControlResult query_node(const std::string& endpoint, const nlohmann::json& request,
                         std::chrono::milliseconds timeout);

}  // namespace starling::daemon
