#include <gtest/gtest.h>

#include "daemon/control_protocol.h"

namespace starling::daemon {
namespace {

std::string error_of(std::string_view frame) {
  auto parsed = parse_control_request(frame);
  auto* message = std::get_if<std::string>(&parsed);
  return message ? *message : std::string();
}

TEST(ControlProtocol, ParsesEveryCommand) {
  for (const auto& name : control_command_names()) {
    auto parsed = parse_control_request("{\"cmd\": \"" + name + "\"}");
    ASSERT_TRUE(std::holds_alternative<ControlRequest>(parsed)) << name;
    EXPECT_EQ(to_string(std::get<ControlRequest>(parsed).command), name);
  }
  auto with_id = std::get<ControlRequest>(parse_control_request(R"({"cmd":"peers","id":"x"})"));
  EXPECT_EQ(with_id.id, "x");
}

TEST(ControlProtocol, RefusesBadRequestsWithMessagesThatSayWhatIsValid) {
  EXPECT_NE(error_of("not json").find("not JSON"), std::string::npos);
  EXPECT_NE(error_of("[1,2]").find("expected a JSON object"), std::string::npos);
  EXPECT_NE(error_of("{}").find("\"cmd\" must be a string"), std::string::npos);
  EXPECT_NE(error_of(R"({"cmd": 3})").find("\"cmd\" must be a string"), std::string::npos);
  EXPECT_NE(error_of(R"({"cmd": "fly"})")
                .find("unknown command \"fly\"; valid commands: status, peers, pause, resume, "
                      "checkpoint, stop, sync"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"cmd": "stop", "now": true})").find("unknown field \"now\""),
            std::string::npos);
  EXPECT_NE(error_of(std::string(kMaxControlRequestBytes + 1, ' ')).find("too large"),
            std::string::npos);
}

TEST(ControlProtocol, RepliesCarryOkAndTheRequestId) {
  auto ok = ok_reply({{"step", 3}}, 7);
  EXPECT_TRUE(ok["ok"].get<bool>());
  EXPECT_EQ(ok["id"], 7);
  auto error = error_reply("nope");
  EXPECT_FALSE(error["ok"].get<bool>());
  EXPECT_FALSE(error.contains("id"));
}

}  // namespace
}  // namespace starling::daemon
