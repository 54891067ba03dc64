#include "daemon/control_protocol.h"

namespace starling::daemon {

std::string_view to_string(ControlCommand command) {
  switch (command) {
    case ControlCommand::status: return "status";
    case ControlCommand::peers: return "peers";
    case ControlCommand::pause: return "pause";
    case ControlCommand::resume: return "resume";
    case ControlCommand::checkpoint: return "checkpoint";
    case ControlCommand::stop: return "stop";
    case ControlCommand::sync: return "sync";
  }
  return "?";
}

const std::vector<std::string>& control_command_names() {
  // Order matches ControlCommand.
  static const std::vector<std::string> names = {"status", "peers",      "pause", "resume",
                                                 "checkpoint", "stop", "sync"};
  return names;
}

std::variant<ControlRequest, std::string> parse_control_request(std::string_view frame) {
  if (frame.size() > kMaxControlRequestBytes) {
    return "request too large (" + std::to_string(frame.size()) + " bytes; at most " +
           std::to_string(kMaxControlRequestBytes) + ")";
  }
  nlohmann::json request = nlohmann::json::parse(frame, nullptr, /*allow_exceptions=*/false);
  if (request.is_discarded()) {
    return std::string("malformed request: not JSON; send an object such as {\"cmd\": \"status\"}");
  }
  if (!request.is_object()) {
    return std::string("malformed request: expected a JSON object such as {\"cmd\": \"status\"}");
  }
  auto cmd = request.find("cmd");
  if (cmd == request.end() || !cmd->is_string()) {
    return std::string("malformed request: \"cmd\" must be a string");
  }
  for (auto it = request.begin(); it != request.end(); ++it) {
    if (it.key() != "cmd" && it.key() != "id") {
      return "unknown field \"" + it.key() + "\"; a request has \"cmd\" and optionally \"id\"";
    }
  }
  ControlRequest parsed;
  parsed.id = request.value("id", nlohmann::json());
  const std::string name = cmd->get<std::string>();
  const auto& names = control_command_names();
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == name) {
      parsed.command = static_cast<ControlCommand>(i);
      return parsed;
    }
  }
  std::string valid;
  for (const auto& n : names) valid += (valid.empty() ? "" : ", ") + n;
  return "unknown command \"" + name + "\"; valid commands: " + valid;
}

nlohmann::json error_reply(const std::string& message, const nlohmann::json& id) {
  nlohmann::json reply = {{"ok", false}, {"error", message}};
  if (!id.is_null()) reply["id"] = id;
  return reply;
}

nlohmann::json ok_reply(nlohmann::json body, const nlohmann::json& id) {
  if (!body.is_object()) body = nlohmann::json::object();
  body["ok"] = true;
  if (!id.is_null()) body["id"] = id;
  return body;
}

}  // namespace starling::daemon
