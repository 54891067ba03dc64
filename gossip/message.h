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
// The same for raw payload bytes (gossip_params_int8: gossip/int8_blocks.h).
OutgoingPayload make_payload(std::span<const std::byte> bytes, std::shared_ptr<const void> owner);
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
  std::span<const float> floats() { return view_as(aligned_); }
  // The payload as binary16 values (gossip_params_f16), zero-copy or copied like floats().
  std::span<const Half> halves() { return view_as(aligned_halves_); }

 private:
  // The bytes as T values: in place when aligned for T, else copied once into `copy`.
  template <typename T>
  std::span<const T> view_as(std::vector<T>& copy) {
    if (reinterpret_cast<std::uintptr_t>(bytes_.data()) % alignof(T) == 0) {
      return {reinterpret_cast<const T*>(bytes_.data()), bytes_.size() / sizeof(T)};
    }
    if (copy.empty() && !bytes_.empty()) {
      copy.resize(bytes_.size() / sizeof(T));
      std::memcpy(copy.data(), bytes_.data(), copy.size() * sizeof(T));
    }
    return copy;
  }

  Header header_{};
  std::shared_ptr<const void> owner_;
  std::span<const std::byte> bytes_;
  std::vector<float> aligned_;
  std::vector<Half> aligned_halves_;
};

}  // namespace starling::gossip
