#include "gossip/message.h"

#include "gossip/checksum.h"

namespace starling::gossip {

OutgoingPayload make_payload(std::span<const float> values, std::shared_ptr<const void> owner) {
  OutgoingPayload payload;
  payload.owner = std::move(owner);
  payload.bytes = std::as_bytes(values);
  payload.crc = payload_checksum(payload.bytes);
  return payload;
}

OutgoingPayload make_payload(std::span<const Half> values, std::shared_ptr<const void> owner) {
  OutgoingPayload payload;
  payload.owner = std::move(owner);
  payload.bytes = std::as_bytes(values);
  payload.crc = payload_checksum(payload.bytes);
  return payload;
}

OutgoingPayload copy_payload(std::span<const float> values) {
  auto buffer = std::make_shared<const std::vector<float>>(values.begin(), values.end());
  std::span<const float> view(*buffer);
  return make_payload(view, std::move(buffer));
}

}  // namespace starling::gossip
