#pragma once
// The control protocol spoken on each node's control socket: one JSON object per request frame,
// one JSON object per reply. Requests: {"cmd": "status" | "peers" | "pause" | "resume" |
// "checkpoint" | "stop" | "sync", "id": <optional, echoed>}. Replies always carry "ok"; a
// failed request carries "error" with a message that says what would be valid.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace starling::daemon {

enum class ControlCommand { status, peers, pause, resume, checkpoint, stop, sync };

std::string_view to_string(ControlCommand command);
const std::vector<std::string>& control_command_names();

struct ControlRequest {
  ControlCommand command = ControlCommand::status;
  nlohmann::json id;  // null when absent
};

inline constexpr std::size_t kMaxControlRequestBytes = 64 * 1024;

// A request, or the error message to send back.
std::variant<ControlRequest, std::string> parse_control_request(std::string_view frame);

nlohmann::json error_reply(const std::string& message, const nlohmann::json& id = nullptr);
nlohmann::json ok_reply(nlohmann::json body, const nlohmann::json& id = nullptr);

}  // namespace starling::daemon
