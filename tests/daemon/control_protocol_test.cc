#include <gtest/gtest.h>

#include <random>

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

// Whatever arrives on the control socket gets a reply that can be sent: random bytes and
// mutated requests parse into a request or an error message, never an exception, and the
// reply (which echoes the message and the request's id) serialises. A reply that could not be
// dumped (invalid UTF-8 echoed back, say) would take the control thread down.
TEST(ControlProtocol, RandomAndMutatedRequestsGetAReplyThatSerialises) {
  std::mt19937 rng(20261126);
  auto pick = [&rng](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  const std::vector<std::string> valid = {R"({"cmd":"status"})", R"({"cmd":"stop","id":"x"})",
                                          R"({"cmd":"checkpoint","id":[1,{"a":null}]})"};
  for (int i = 0; i < 20000; ++i) {
    std::string frame;
    if (i % 2 == 0) {
      for (std::size_t k = pick(48); k > 0; --k) frame += static_cast<char>(pick(256));
    } else {
      frame = valid[pick(valid.size())];
      for (std::size_t k = 1 + pick(3); k > 0; --k) {
        frame[pick(frame.size())] = static_cast<char>(pick(256));
      }
    }
    std::variant<ControlRequest, std::string> parsed;
    ASSERT_NO_THROW(parsed = parse_control_request(frame)) << i;
    nlohmann::json reply;
    if (auto* request = std::get_if<ControlRequest>(&parsed)) {
      reply = ok_reply({{"cmd", to_string(request->command)}}, request->id);
    } else {
      EXPECT_FALSE(std::get<std::string>(parsed).empty()) << i;
      reply = error_reply(std::get<std::string>(parsed));
    }
    EXPECT_NO_THROW((void)reply.dump()) << "request " << i << " of " << frame.size() << " bytes";
  }
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
