#include "gossip/message.h"

#include "gossip/checksum.h"

namespace starling::gossip {

namespace {

OutgoingPayload payload_of(std::span<const std::byte> bytes, std::shared_ptr<const void> owner) {
  OutgoingPayload payload;
  payload.owner = std::move(owner);
  payload.bytes = bytes;
  payload.crc = payload_checksum(bytes);
  return payload;
}

}  // namespace

OutgoingPayload make_payload(std::span<const float> values, std::shared_ptr<const void> owner) {
  return payload_of(std::as_bytes(values), std::move(owner));
}

OutgoingPayload make_payload(std::span<const Half> values, std::shared_ptr<const void> owner) {
  return payload_of(std::as_bytes(values), std::move(owner));
}

OutgoingPayload make_payload(std::span<const std::byte> bytes, std::shared_ptr<const void> owner) {
  return payload_of(bytes, std::move(owner));
}

OutgoingPayload copy_payload(std::span<const float> values) {
  auto buffer = std::make_shared<const std::vector<float>>(values.begin(), values.end());
  std::span<const float> view(*buffer);
  return make_payload(view, std::move(buffer));
}

}  // namespace starling::gossip
