#include "gossip/wire.h"

#include <algorithm>
#include <cstring>

#include "gossip/checksum.h"
#include "gossip/half_float.h"
#include "gossip/int8_blocks.h"

namespace starling::gossip {
namespace {

template <typename T>
void put(std::array<std::byte, kHeaderSize>& out, std::size_t offset, T value) {
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    out[offset + i] = static_cast<std::byte>((static_cast<std::uint64_t>(value) >> (8 * i)) & 0xFF);
  }
}

template <typename T>
T get(std::span<const std::byte> in, std::size_t offset) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i) {
    value |= static_cast<std::uint64_t>(std::to_integer<std::uint8_t>(in[offset + i])) << (8 * i);
  }
  return static_cast<T>(value);
}

}  // namespace

bool is_known_type(std::uint16_t type) { return type >= 1 && type <= 15; }

bool carries_payload(MessageType type) {
  switch (type) {
    case MessageType::gossip_params:
    case MessageType::gossip_params_f16:
    case MessageType::gossip_params_int8:
    case MessageType::allreduce_chunk:
    case MessageType::model_reply:
    case MessageType::model_update:
    case MessageType::model_reply_f16:
    case MessageType::model_update_f16: return true;
    default: return false;
  }
}

bool has_half_payload(MessageType type) {
  return type == MessageType::gossip_params_f16 || type == MessageType::model_reply_f16 ||
         type == MessageType::model_update_f16;
}

bool payload_length_valid(MessageType type, std::uint64_t bytes) {
  if (type == MessageType::gossip_params_int8) return int8_payload_values(bytes).has_value();
  return bytes % (has_half_payload(type) ? sizeof(Half) : sizeof(float)) == 0;
}

bool is_gossip_payload(MessageType type) {
  return type == MessageType::gossip_params || type == MessageType::gossip_params_f16 ||
         type == MessageType::gossip_params_int8;
}

std::string_view to_string(MessageType type) {
  switch (type) {
    case MessageType::heartbeat: return "heartbeat";
    case MessageType::heartbeat_ack: return "heartbeat-ack";
    case MessageType::gossip_params: return "gossip-params";
    case MessageType::allreduce_chunk: return "allreduce-chunk";
    case MessageType::sync_request: return "sync-request";
    case MessageType::model_request: return "model-request";
    case MessageType::model_reply: return "model-reply";
    case MessageType::model_update: return "model-update";
    case MessageType::balance_release: return "balance-release";
    case MessageType::allreduce_abort: return "allreduce-abort";
    case MessageType::gossip_params_f16: return "gossip-params-f16";
    case MessageType::model_reply_f16: return "model-reply-f16";
    case MessageType::model_update_f16: return "model-update-f16";
    case MessageType::ring_hello: return "ring-hello";
    case MessageType::gossip_params_int8: return "gossip-params-int8";
  }
  return "unknown";
}

std::string_view to_string(RejectReason reason) {
  switch (reason) {
    case RejectReason::malformed_header: return "malformed header";
    case RejectReason::bad_magic: return "wrong magic";
    case RejectReason::bad_version: return "wrong protocol version";
    case RejectReason::unknown_type: return "unknown message type";
    case RejectReason::unknown_sender: return "unknown sender";
    case RejectReason::sender_mismatch: return "sender does not match transport identity";
    case RejectReason::fingerprint_mismatch: return "model fingerprint mismatch";
    case RejectReason::length_mismatch: return "payload length disagrees with frame";
    case RejectReason::missing_frames: return "missing frames";
    case RejectReason::extra_frames: return "extra frames";
    case RejectReason::checksum_mismatch: return "payload checksum mismatch";
    case RejectReason::non_finite: return "NaN or Inf in payload";
    case RejectReason::not_a_neighbour: return "sender is not a neighbour for this message";
    case RejectReason::round_outside_window: return "round outside window";
    case RejectReason::replayed: return "replayed message";
    case RejectReason::late: return "late (round already done)";
    case RejectReason::mailbox_full: return "mailbox full";
    case RejectReason::count_: break;
  }
  return "unknown reason";
}

std::array<std::byte, kHeaderSize> encode_header(const Header& h) {
  std::array<std::byte, kHeaderSize> out{};
  put<std::uint32_t>(out, 0, kMagic);
  put<std::uint16_t>(out, 4, kProtocolVersion);
  put<std::uint16_t>(out, 6, static_cast<std::uint16_t>(h.type));
  put<std::uint32_t>(out, 8, h.sender);
  put<std::uint32_t>(out, 12, h.payload_crc);
  put<std::uint64_t>(out, 16, h.incarnation);
  put<std::uint64_t>(out, 24, h.tag);
  put<std::uint64_t>(out, 32, h.fingerprint);
  put<std::uint64_t>(out, 40, h.payload_bytes);
  put<std::uint64_t>(out, 48, h.aux0);
  put<std::uint64_t>(out, 56, h.aux1);
  return out;
}

bool all_finite(std::span<const float> values) {
  return all_finite_bytes(std::as_bytes(values));
}

bool all_finite_bytes(std::span<const std::byte> bytes) {
  // A float is NaN or Inf exactly when its exponent bits are all ones, so the largest masked
  // exponent tells: a max reduction, which vectorises. memcpy keeps this valid for unaligned
  // frames (ZeroMQ's zero-copy receive can hand out any offset).
  constexpr std::uint32_t kExponent = 0x7F800000u;
  constexpr std::size_t kBlock = 16;
  const std::byte* data = bytes.data();
  const std::size_t count = bytes.size() / sizeof(float);
  std::uint32_t largest = 0;
  std::size_t i = 0;
  for (; i + kBlock <= count; i += kBlock) {
    std::uint32_t bits[kBlock];
    std::memcpy(bits, data + i * sizeof(float), sizeof bits);
    for (std::size_t k = 0; k < kBlock; ++k) largest = std::max(largest, bits[k] & kExponent);
  }
  for (; i < count; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, data + i * sizeof(float), sizeof bits);
    largest = std::max(largest, bits & kExponent);
  }
  return largest != kExponent;
}

Decoded decode_header(std::span<const std::byte> head, const DecodeContext& context) {
  Decoded out;
  auto fail = [&out](RejectReason reason) {
    out.error = reason;
    return out;
  };
  if (head.size() != kHeaderSize) return fail(RejectReason::malformed_header);
  if (get<std::uint32_t>(head, 0) != kMagic) return fail(RejectReason::bad_magic);
  out.version = get<std::uint16_t>(head, 4);
  if (out.version != kProtocolVersion) return fail(RejectReason::bad_version);
  auto raw_type = get<std::uint16_t>(head, 6);
  if (!is_known_type(raw_type)) return fail(RejectReason::unknown_type);

  Header& h = out.header;
  h.type = static_cast<MessageType>(raw_type);
  h.sender = get<std::uint32_t>(head, 8);
  h.payload_crc = get<std::uint32_t>(head, 12);
  h.incarnation = get<std::uint64_t>(head, 16);
  h.tag = get<std::uint64_t>(head, 24);
  h.fingerprint = get<std::uint64_t>(head, 32);
  h.payload_bytes = get<std::uint64_t>(head, 40);
  h.aux0 = get<std::uint64_t>(head, 48);
  h.aux1 = get<std::uint64_t>(head, 56);
  out.header_parsed = true;

  if (h.sender >= context.cluster_size) return fail(RejectReason::unknown_sender);
  if (h.sender != context.transport_sender) return fail(RejectReason::sender_mismatch);
  if (h.fingerprint != context.fingerprint) return fail(RejectReason::fingerprint_mismatch);
  return out;
}

Decoded decode_message(std::span<const std::span<const std::byte>> frames,
                       const DecodeContext& context) {
  if (frames.empty()) {
    Decoded out;
    out.error = RejectReason::missing_frames;
    return out;
  }
  Decoded out = decode_header(frames[0], context);
  if (out.error) return out;
  auto fail = [&out](RejectReason reason) {
    out.error = reason;
    return out;
  };
  const Header& h = out.header;
  // Ring hellos belong to ring links, never to a ZeroMQ message.
  if (h.type == MessageType::ring_hello) return fail(RejectReason::unknown_type);

  const std::size_t expected_frames = carries_payload(h.type) ? 2 : 1;
  if (frames.size() < expected_frames) return fail(RejectReason::missing_frames);
  if (frames.size() > expected_frames) return fail(RejectReason::extra_frames);
  if (expected_frames == 1) {
    if (h.payload_bytes != 0 || h.payload_crc != 0) return fail(RejectReason::length_mismatch);
    return out;
  }
  std::span<const std::byte> payload = frames[1];
  if (h.payload_bytes != payload.size() || !payload_length_valid(h.type, payload.size())) {
    return fail(RejectReason::length_mismatch);
  }
  // Checksum and finiteness in one pass over the payload (an int8 payload's values are
  // finite when its scales are: they are checked apart, a 65th of the bytes).
  PayloadScan scanned;
  if (h.type == MessageType::gossip_params_int8) {
    scanned.checksum = payload_checksum(payload);
    scanned.all_finite = int8_scales_finite(payload, *int8_payload_values(payload.size()));
  } else {
    scanned = has_half_payload(h.type) ? scan_half_payload(payload) : scan_payload(payload);
  }
  if (scanned.checksum != h.payload_crc) return fail(RejectReason::checksum_mismatch);
  if (!scanned.all_finite) return fail(RejectReason::non_finite);
  return out;
}

}  // namespace starling::gossip
