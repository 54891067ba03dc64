#pragma once
// Messages as algorithms see them: an outgoing message (type, tag, aux fields and an optional
// payload that is shared, never copied, until the transport is done with it) and a received,
// validated one (header plus payload bytes owned by whatever the transport received them into).
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "gossip/half_float.h"
#include "gossip/wire.h"

namespace starling::gossip {

// Payload bytes kept alive by `owner` until every send that uses them has completed. The CRC is
// computed once, so one snapshot sent to k peers is checksummed once.
struct OutgoingPayload {
  std::shared_ptr<const void> owner;
  std::span<const std::byte> bytes;
  std::uint32_t crc = 0;
};

// Views `values` (kept alive by `owner`) as a payload and checksums it.
OutgoingPayload make_payload(std::span<const float> values, std::shared_ptr<const void> owner);
// The same for binary16 values (gossip_params_f16).
OutgoingPayload make_payload(std::span<const Half> values, std::shared_ptr<const void> owner);
// Copies `values` into a new shared buffer.
OutgoingPayload copy_payload(std::span<const float> values);

struct OutgoingMessage {
  MessageType type = MessageType::heartbeat;
  std::uint64_t tag = 0;
  std::uint64_t aux0 = 0;
  std::uint64_t aux1 = 0;
  OutgoingPayload payload;  // empty bytes for types without payload
};

class ReceivedMessage {
 public:
  ReceivedMessage() = default;
  ReceivedMessage(Header header, std::shared_ptr<const void> owner, std::span<const std::byte> bytes)
      : header_(header), owner_(std::move(owner)), bytes_(bytes) {}
  ReceivedMessage(ReceivedMessage&&) noexcept = default;
  ReceivedMessage& operator=(ReceivedMessage&&) noexcept = default;

  const Header& header() const { return header_; }
  std::size_t sender() const { return header_.sender; }
  std::span<const std::byte> bytes() const { return bytes_; }
  // The payload as floats. Zero-copy when the frame is aligned (every frame larger than
  // ZeroMQ's receive batch is); otherwise copied once into an aligned buffer.
  std::span<const float> floats() {
    if (reinterpret_cast<std::uintptr_t>(bytes_.data()) % alignof(float) == 0) {
      return {reinterpret_cast<const float*>(bytes_.data()), bytes_.size() / sizeof(float)};
    }
    if (aligned_.empty() && !bytes_.empty()) {
      aligned_.resize(bytes_.size() / sizeof(float));
      std::memcpy(aligned_.data(), bytes_.data(), aligned_.size() * sizeof(float));
    }
    return aligned_;
  }
  // The payload as binary16 values (gossip_params_f16), zero-copy or copied like floats().
  std::span<const Half> halves() {
    if (reinterpret_cast<std::uintptr_t>(bytes_.data()) % alignof(Half) == 0) {
      return {reinterpret_cast<const Half*>(bytes_.data()), bytes_.size() / sizeof(Half)};
    }
    if (aligned_halves_.empty() && !bytes_.empty()) {
      aligned_halves_.resize(bytes_.size() / sizeof(Half));
      std::memcpy(aligned_halves_.data(), bytes_.data(), aligned_halves_.size() * sizeof(Half));
    }
    return aligned_halves_;
  }

 private:
  Header header_{};
  std::shared_ptr<const void> owner_;
  std::span<const std::byte> bytes_;
  std::vector<float> aligned_;
  std::vector<Half> aligned_halves_;
};

}  // namespace starling::gossip
