#pragma once
// The wire format. A message is frame 0, a fixed 64-byte header with explicit little-endian
// byte order, optionally followed by frame 1, the payload (raw IEEE-754 binary32 values,
// little-endian). Nothing is ever copied raw from a struct onto the wire.
//
//   offset size field
//        0    4 magic "STRL"
//        4    2 protocol version
//        6    2 message type
//        8    4 sender (node index in the cluster file)
//       12    4 payload checksum, CRC-32C/4 (checksum.h); 0 without payload
//       16    8 incarnation (sender's start time; distinguishes a restarted node)
//       24    8 tag (gossip round, collective number)
//       32    8 model fingerprint
//       40    8 payload length in bytes
//       48    8 aux0 (type-specific: timestamps, step and chunk numbers)
//       56    8 aux1 (type-specific)
//
// decode_message() checks every field before anything uses it; a failure is a RejectReason,
// never an exception and never a crash.
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace starling::gossip {

static_assert(std::endian::native == std::endian::little,
              "payload frames are little-endian floats sent without conversion");

inline constexpr std::uint32_t kMagic = 0x4C525453u;  // bytes 'S' 'T' 'R' 'L'
// 2: heartbeats carry kHeartbeatPausedBit in aux1 (a version-1 node would read it as a huge
// step), so nodes of the two versions refuse each other rather than misread it.
// 3: the header's fingerprint covers the protocol settings (topology/protocol_fingerprint.h),
// not the model alone, so a version-2 node would report every version-3 peer as running
// another model; a version mismatch says what is wrong instead.
// 4: heartbeat acks carry the sender's ring-link port in aux1, and ring links (ring_links.h)
// open with a ring_hello; a version-3 node would never send its collectives' chunks there.
inline constexpr std::uint16_t kProtocolVersion = 4;
inline constexpr std::size_t kHeaderSize = 64;

// Set in a heartbeat's aux1 (above any real step count) while the sender is paused: it is
// alive and answers, but runs no rounds, so nobody should wait for it.
constexpr std::uint64_t kHeartbeatPausedBit = std::uint64_t{1} << 63;

enum class MessageType : std::uint16_t {
  heartbeat = 1,        // tag: sender's next gossip round; aux0: send time (ns); aux1: step,
                        // with kHeartbeatPausedBit set while the sender's training is paused
  heartbeat_ack = 2,    // aux0: the heartbeat's send time, echoed; aux1: the sender's
                        // ring-link port (ring_links.h), 0 when it has none
  gossip_params = 3,    // tag: round; payload: the sender's parameters
  allreduce_chunk = 4,  // tag: collective; aux0: (ring step << 32) | chunk; aux1: membership
  sync_request = 5,     // tag: requested collective; asks every node for one allreduce
  model_request = 6,    // dynamic averaging: aux0 = balancing id; asks for the current model
  model_reply = 7,      // dynamic averaging: payload = model; aux0 = balancing id
  model_update = 8,     // dynamic averaging: payload = averaged model; aux1 = flags
  balance_release = 9,  // dynamic averaging: ends a balancing without a model
  allreduce_abort = 10, // tag: the collective a member gave up on; everyone stops waiting
  gossip_params_f16 = 11,  // as gossip_params, payload in binary16 (wire_precision = "f16")
  // Dynamic averaging with wire_precision = "f16": the payload is the drift x - r from the
  // reference r, in binary16; aux1 carries the reference's checksum (dynamic_averager.h).
  model_reply_f16 = 12,
  model_update_f16 = 13,
  // The first frame on a ring link (a TCP stream that carries allreduce chunks, ring_links.h):
  // aux0 = the node index the sender means to reach. Never sent over ZeroMQ.
  ring_hello = 14,
  // As gossip_params, payload quantised to 8 bits in blocks (wire_precision = "int8";
  // gossip/int8_blocks.h has the layout).
  gossip_params_int8 = 15,
};

bool is_known_type(std::uint16_t type);
bool carries_payload(MessageType type);
// True for the types whose payload is binary16 (the *_f16 types).
bool has_half_payload(MessageType type);
// Whether a payload of `bytes` bytes is a whole number of values of `type`: a multiple of 2
// for the binary16 types, of 4 for float32 ones, an int8 layout's length for gossip_params_int8.
bool payload_length_valid(MessageType type, std::uint64_t bytes);
// True for the gossip payload types (gossip_params, its _f16 and _int8 forms).
bool is_gossip_payload(MessageType type);
std::string_view to_string(MessageType type);

struct Header {
  MessageType type = MessageType::heartbeat;
  std::uint32_t sender = 0;
  std::uint32_t payload_crc = 0;
  std::uint64_t incarnation = 0;
  std::uint64_t tag = 0;
  std::uint64_t fingerprint = 0;
  std::uint64_t payload_bytes = 0;
  std::uint64_t aux0 = 0;
  std::uint64_t aux1 = 0;
};

std::array<std::byte, kHeaderSize> encode_header(const Header& header);

// Why a message was refused. Counted per peer and logged once per peer and reason.
enum class RejectReason : std::uint8_t {
  malformed_header,      // frame 0 is not 64 bytes
  bad_magic,
  bad_version,
  unknown_type,
  unknown_sender,        // routing id or header sender is not a cluster node
  sender_mismatch,       // header sender differs from the transport's identity of the peer
  fingerprint_mismatch,  // another model
  length_mismatch,       // payload length field disagrees with the payload frame
  missing_frames,
  extra_frames,
  checksum_mismatch,
  non_finite,            // NaN or Inf in the payload
  not_a_neighbour,       // this sender may not send this type to us
  round_outside_window,  // tag too far ahead of what we are doing
  replayed,              // a message we have already seen, or an old incarnation
  late,                  // tag behind what we are doing: harmless, dropped
  mailbox_full,          // the peer has too many undelivered messages buffered
  count_                 // number of reasons; not a reason
};
inline constexpr std::size_t kRejectReasonCount = static_cast<std::size_t>(RejectReason::count_);
std::string_view to_string(RejectReason reason);

// What the receiver knows before looking at a message.
struct DecodeContext {
  std::uint32_t cluster_size = 0;
  std::uint64_t fingerprint = 0;
  std::uint32_t transport_sender = 0;  // who the transport says sent it
};

struct Decoded {
  std::optional<RejectReason> error;  // nullopt: the message is valid
  bool header_parsed = false;         // header fields are filled (error came after parsing them)
  std::uint16_t version = 0;          // the sender's protocol version, once the magic matched
  Header header;
};

// Checks a header alone: magic, version, type, sender, fingerprint (what decode_message checks
// before it looks at frames). For streams, where a payload's length comes from its header.
Decoded decode_header(std::span<const std::byte> head, const DecodeContext& context);

// Checks frames (header, then payload if the type carries one) in order: sizes, magic, version,
// type, sender, fingerprint, frame count, length, checksum, finiteness.
Decoded decode_message(std::span<const std::span<const std::byte>> frames,
                       const DecodeContext& context);

// True when every float is finite; exact bit test, so it vectorises and ignores FP modes.
bool all_finite(std::span<const float> values);
// The same over raw little-endian float bytes of any alignment.
bool all_finite_bytes(std::span<const std::byte> bytes);

}  // namespace starling::gossip
