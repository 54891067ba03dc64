#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gossip/checksum.h"
#include "gossip/int8_blocks.h"
#include "gossip/message.h"
#include "gossip/wire.h"

namespace starling::gossip {
namespace {

std::vector<std::byte> bytes_of(const std::array<std::byte, kHeaderSize>& a) {
  return {a.begin(), a.end()};
}

struct Frames {
  std::vector<std::vector<std::byte>> data;
  std::vector<std::span<const std::byte>> views() const {
    return {data.begin(), data.end()};
  }
};

constexpr std::uint64_t kFingerprint = 0xABCDEF0123456789ull;
const DecodeContext kContext{4, kFingerprint, 2};

// A valid message from node 2 of round 7 with this payload.
Frames message_with(MessageType type, const OutgoingPayload& payload) {
  Header h;
  h.type = type;
  h.sender = 2;
  h.fingerprint = kFingerprint;
  h.tag = 7;
  h.payload_bytes = payload.bytes.size();
  h.payload_crc = payload.crc;
  Frames f;
  f.data.push_back(bytes_of(encode_header(h)));
  f.data.emplace_back(payload.bytes.begin(), payload.bytes.end());
  return f;
}

Frames gossip_message(std::vector<float> values) {
  return message_with(MessageType::gossip_params, copy_payload(values));
}

// The same values as an int8 payload (gossip/int8_blocks.h).
Frames int8_message(const std::vector<float>& values) {
  auto owner = std::make_shared<std::vector<std::byte>>(int8_payload_bytes(values.size()));
  quantize_int8(values, *owner);
  return message_with(MessageType::gossip_params_int8,
                      make_payload(std::span<const std::byte>(*owner), owner));
}

TEST(Checksum, KnownCrc32cValues) {
  // RFC 3720 test vector: 32 bytes of zeros -> 0x8A9136AA; "123456789" -> 0xE3069283.
  std::vector<std::byte> zeros(32, std::byte{0});
  EXPECT_EQ(crc32c(zeros), 0x8A9136AAu);
  std::string digits = "123456789";
  EXPECT_EQ(crc32c(std::as_bytes(std::span(digits.data(), digits.size()))), 0xE3069283u);
  // Lengths that exercise the 64-byte, 8-byte and 1-byte paths agree with a bytewise chain.
  std::vector<std::byte> data(1000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 31 + 7);
  for (std::size_t len : {0u, 1u, 7u, 8u, 9u, 63u, 64u, 65u, 999u}) {
    std::uint32_t whole = crc32c(std::span(data.data(), len));
    std::uint32_t chained = 0;
    for (std::size_t i = 0; i < len; ++i) chained = crc32c(std::span(data.data() + i, 1), chained);
    EXPECT_EQ(whole, chained) << len;
  }
}

TEST(Checksum, PayloadChecksumFollowsItsDefinition) {
  std::vector<std::byte> data(4096 + 19);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i * 131 + 17);
  for (std::size_t n : {0u, 5u, 31u, 32u, 33u, 1000u, 4096u + 19u}) {
    std::span<const std::byte> payload(data.data(), n);
    const std::size_t lane = 8 * (n / 32);
    std::vector<std::byte> summary;
    for (std::size_t k = 0; k < 4; ++k) {
      std::uint32_t c = crc32c(payload.subspan(k * lane, lane));
      for (int b = 0; b < 4; ++b) summary.push_back(static_cast<std::byte>((c >> (8 * b)) & 0xFF));
    }
    summary.insert(summary.end(), payload.begin() + static_cast<std::ptrdiff_t>(4 * lane), payload.end());
    EXPECT_EQ(payload_checksum(payload), crc32c(summary)) << n;
  }
}

TEST(Checksum, PayloadChecksumSeesEveryFlippedByte) {
  std::vector<std::byte> data(1000 + 7);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::byte>(i);
  const std::uint32_t original = payload_checksum(data);
  for (std::size_t position = 0; position < data.size(); position += 13) {
    data[position] ^= std::byte{0x10};
    EXPECT_NE(payload_checksum(data), original) << position;
    data[position] ^= std::byte{0x10};
  }
  data.back() ^= std::byte{1};  // in the tail
  EXPECT_NE(payload_checksum(data), original);
}

TEST(Checksum, ScanFindsNonFiniteFloatsInLanesAndTail) {
  for (std::size_t n : {3u, 8u, 100u, 1001u}) {
    std::vector<float> values(n, 1.5f);
    auto clean = scan_payload(std::as_bytes(std::span(values)));
    EXPECT_TRUE(clean.all_finite);
    EXPECT_EQ(clean.checksum, payload_checksum(std::as_bytes(std::span(values))));
    for (std::size_t at : {std::size_t{0}, n / 2, n - 1}) {
      for (float bad : {std::numeric_limits<float>::quiet_NaN(),
                        -std::numeric_limits<float>::infinity()}) {
        values[at] = bad;
        EXPECT_FALSE(scan_payload(std::as_bytes(std::span(values))).all_finite) << n << " " << at;
        values[at] = 1.5f;
      }
    }
  }
}

// The half scan works block by block within each lane (16 KiB blocks): sizes below one block,
// across blocks and lanes, and with a tail; a non-finite half anywhere is found.
TEST(Checksum, HalfScanFindsNonFiniteHalvesInBlocksLanesAndTail) {
  constexpr Half kOne = 0x3C00, kNaN = 0x7E00, kInf = 0xFC00, kLargest = 0x7BFF;
  for (std::size_t n : {1u, 15u, 17u, 1001u, 40001u, 100003u}) {
    std::vector<Half> values(n, kOne);
    values[n / 3] = kLargest;  // finite
    const auto bytes = [&] { return std::as_bytes(std::span(values)); };
    auto clean = scan_half_payload(bytes());
    EXPECT_TRUE(clean.all_finite) << n;
    EXPECT_EQ(clean.checksum, payload_checksum(bytes())) << n;
    for (std::size_t at : {std::size_t{0}, n / 4, n / 2 + 1, n - 9, n - 1}) {
      if (at >= n) continue;
      for (Half bad : {kNaN, kInf}) {
        const Half kept = values[at];
        values[at] = bad;
        EXPECT_FALSE(scan_half_payload(bytes()).all_finite) << n << " " << at;
        EXPECT_EQ(scan_half_payload(bytes()).checksum, payload_checksum(bytes()));
        values[at] = kept;
      }
    }
  }
}

TEST(Wire, HeaderRoundTripsWithExplicitByteOrder) {
  Header h;
  h.type = MessageType::allreduce_chunk;
  h.sender = 2;
  h.payload_crc = 0x01020304;
  h.incarnation = 0x1122334455667788ull;
  h.tag = 42;
  h.fingerprint = kFingerprint;
  h.aux0 = (3ull << 32) | 5;
  h.aux1 = 99;
  auto encoded = encode_header(h);
  // Magic is "STRL" in byte order, the version little-endian right after it.
  EXPECT_EQ(static_cast<char>(encoded[0]), 'S');
  EXPECT_EQ(static_cast<char>(encoded[3]), 'L');
  EXPECT_EQ(std::to_integer<int>(encoded[4]), kProtocolVersion);
  EXPECT_EQ(std::to_integer<int>(encoded[16]), 0x88);  // little-endian incarnation
  std::vector<float> payload(0);
  Frames f;
  f.data.push_back(bytes_of(encoded));
  f.data.emplace_back();
  h.payload_bytes = 0;
  h.payload_crc = payload_checksum({});
  f.data[0] = bytes_of(encode_header(h));
  Decoded d = decode_message(f.views(), kContext);
  ASSERT_FALSE(d.error.has_value()) << to_string(*d.error);
  EXPECT_EQ(d.header.type, MessageType::allreduce_chunk);
  EXPECT_EQ(d.header.incarnation, h.incarnation);
  EXPECT_EQ(d.header.aux0, h.aux0);
  EXPECT_EQ(d.header.aux1, 99u);
}

TEST(Wire, AcceptsAValidGossipMessage) {
  Frames f = gossip_message({1.0f, -2.5f, 3.0f});
  Decoded d = decode_message(f.views(), kContext);
  ASSERT_FALSE(d.error.has_value()) << to_string(*d.error);
  EXPECT_EQ(d.header.tag, 7u);
  EXPECT_EQ(d.header.payload_bytes, 12u);
}

RejectReason reason_of(const Frames& f, DecodeContext context = kContext) {
  Decoded d = decode_message(f.views(), context);
  EXPECT_TRUE(d.error.has_value());
  return d.error.value_or(RejectReason::count_);
}

TEST(Wire, RejectsEveryKindOfBadMessage) {
  const std::vector<float> values{1.0f, 2.0f, 3.0f, 4.0f};
  {
    Frames f = gossip_message(values);
    f.data[0].resize(63);
    EXPECT_EQ(reason_of(f), RejectReason::malformed_header);
  }
  {
    Frames f = gossip_message(values);
    f.data[0][0] = std::byte{'X'};
    EXPECT_EQ(reason_of(f), RejectReason::bad_magic);
  }
  {
    Frames f = gossip_message(values);
    f.data[0][4] = std::byte{9};
    EXPECT_EQ(reason_of(f), RejectReason::bad_version);
    EXPECT_EQ(decode_message(f.views(), kContext).version, 9);  // for the refusal's log line
  }
  {
    Frames f = gossip_message(values);
    f.data[0][4] = std::byte{1};  // version 1 read heartbeats' aux1 differently
    EXPECT_EQ(reason_of(f), RejectReason::bad_version);
  }
  {
    Frames f = gossip_message(values);
    f.data[0][6] = std::byte{200};
    EXPECT_EQ(reason_of(f), RejectReason::unknown_type);
  }
  {
    Frames f = gossip_message(values);
    EXPECT_EQ(reason_of(f, DecodeContext{2, kFingerprint, 1}), RejectReason::unknown_sender);
    EXPECT_EQ(reason_of(f, DecodeContext{4, kFingerprint, 1}), RejectReason::sender_mismatch);
    EXPECT_EQ(reason_of(f, DecodeContext{4, kFingerprint + 1, 2}),
              RejectReason::fingerprint_mismatch);
  }
  {
    Frames f = gossip_message(values);
    f.data.pop_back();
    EXPECT_EQ(reason_of(f), RejectReason::missing_frames);
  }
  {
    Frames f = gossip_message(values);
    f.data.push_back(f.data[1]);
    EXPECT_EQ(reason_of(f), RejectReason::extra_frames);
  }
  {
    Frames f = gossip_message(values);
    f.data[1].resize(12);  // three floats where the header says four
    EXPECT_EQ(reason_of(f), RejectReason::length_mismatch);
  }
  {
    Frames f = gossip_message(values);
    f.data[1][5] ^= std::byte{0x01};  // one flipped bit
    EXPECT_EQ(reason_of(f), RejectReason::checksum_mismatch);
  }
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    Frames f = gossip_message({1.0f, bad, 3.0f});
    EXPECT_EQ(reason_of(f), RejectReason::non_finite);
  }
  {
    // A heartbeat must not carry a payload.
    Header h;
    h.type = MessageType::heartbeat;
    h.sender = 2;
    h.fingerprint = kFingerprint;
    h.payload_bytes = 4;
    Frames f;
    f.data.push_back(bytes_of(encode_header(h)));
    EXPECT_EQ(reason_of(f), RejectReason::length_mismatch);
  }
}

// What a peer (or anything that reaches the data port) can send is arbitrary. Whatever the
// frames, decoding returns a verdict and never throws; garbage is never accepted; and any change
// to a valid message's payload (float32 or int8), or to the length of any frame, is caught.
TEST(Wire, RandomAndMutatedMessagesAreRefusedWithoutFailing) {
  std::mt19937 rng(20261126);
  auto uniform = [&](std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng); };
  auto random_bytes = [&](std::size_t n) {
    std::vector<std::byte> out(n);
    for (auto& b : out) b = static_cast<std::byte>(uniform(256));
    return out;
  };
  for (int i = 0; i < 5000; ++i) {
    Frames garbage;
    for (std::size_t k = uniform(5); k > 0; --k) garbage.data.push_back(random_bytes(uniform(160)));
    Decoded d;
    ASSERT_NO_THROW(d = decode_message(garbage.views(), kContext));
    EXPECT_TRUE(d.error.has_value()) << "random frames accepted at iteration " << i;
  }
  for (int i = 0; i < 5000; ++i) {
    std::vector<float> values(1 + uniform(64));
    for (float& v : values) v = std::uniform_real_distribution<float>(-10, 10)(rng);
    // Float32 and int8 payloads alike (an int8 payload's length is checked by its layout).
    Frames f = i % 2 == 0 ? gossip_message(values) : int8_message(values);
    switch (uniform(4)) {
      case 0: {  // one byte of the payload changed
        auto& byte = f.data[1][uniform(f.data[1].size())];
        byte ^= static_cast<std::byte>(1 + uniform(255));
        EXPECT_TRUE(decode_message(f.views(), kContext).error.has_value()) << "payload change, " << i;
        break;
      }
      case 1: {  // a frame made shorter or longer
        auto& frame = f.data[uniform(2)];
        const std::size_t size = frame.size();
        std::size_t new_size = uniform(size + 32);
        if (new_size == size) ++new_size;
        frame.resize(new_size, std::byte{0});
        EXPECT_TRUE(decode_message(f.views(), kContext).error.has_value()) << "resized frame, " << i;
        break;
      }
      case 2: {  // one byte of the header changed: some fields (the round, say) are not
                 // covered by a checksum, so this may decode; it must not fail
        f.data[0][uniform(kHeaderSize)] ^= static_cast<std::byte>(1 + uniform(255));
        ASSERT_NO_THROW(decode_message(f.views(), kContext));
        break;
      }
      default: {  // frames dropped or repeated
        if (uniform(2) == 0) {
          f.data.erase(f.data.begin() + static_cast<std::ptrdiff_t>(uniform(2)));
        } else {
          f.data.push_back(f.data[uniform(2)]);
        }
        EXPECT_TRUE(decode_message(f.views(), kContext).error.has_value()) << "frame count, " << i;
      }
    }
  }
}

Frames half_message(MessageType type, std::vector<Half> values) {
  auto owner = std::make_shared<std::vector<Half>>(std::move(values));
  return message_with(type, make_payload(std::span<const Half>(*owner), owner));
}

// Every binary16 type: gossip's snapshots and dynamic averaging's drifts.
class HalfPayloads : public ::testing::TestWithParam<MessageType> {};

TEST_P(HalfPayloads, AreCheckedAsHalves) {
  const MessageType type = GetParam();
  ASSERT_TRUE(has_half_payload(type));
  EXPECT_TRUE(payload_length_valid(type, 6));
  EXPECT_FALSE(payload_length_valid(type, 7));
  auto half_gossip_message = [type](std::vector<Half> values) {
    return half_message(type, std::move(values));
  };
  {
    Frames f = half_gossip_message({0x3C00, 0xC000, 0x7BFF});  // 1, -2, 65504: 6 bytes
    Decoded d = decode_message(f.views(), kContext);
    ASSERT_FALSE(d.error.has_value()) << to_string(*d.error);
    EXPECT_EQ(d.header.type, type);
    EXPECT_EQ(d.header.payload_bytes, 6u);
  }
  for (Half bad : {Half{0x7C00}, Half{0xFC00}, Half{0x7E00}}) {  // +Inf, -Inf, NaN
    Frames f = half_gossip_message({0x3C00, bad, 0x3C00});
    EXPECT_EQ(reason_of(f), RejectReason::non_finite);
  }
  {
    // Read as one little-endian float these bytes are 0x7C000000, which is finite; read as
    // halves the second is Inf. The decoder must check the type's own element.
    Frames f = half_gossip_message({0x0000, 0x7C00});
    EXPECT_EQ(reason_of(f), RejectReason::non_finite);
  }
  {
    Frames f = half_gossip_message({0x3C00, 0x3C00, 0x3C00});
    f.data[1].pop_back();  // an odd number of bytes
    f.data[0] = bytes_of(encode_header([&] {
      Header h;
      h.type = type;
      h.sender = 2;
      h.fingerprint = kFingerprint;
      h.payload_bytes = 5;
      h.payload_crc = payload_checksum(std::span<const std::byte>(f.data[1]));
      return h;
    }()));
    EXPECT_EQ(reason_of(f), RejectReason::length_mismatch);
  }
  {
    Frames f = half_gossip_message({0x3C00, 0x3C00});
    f.data[1][1] ^= std::byte{0x01};
    EXPECT_EQ(reason_of(f), RejectReason::checksum_mismatch);
  }
}

INSTANTIATE_TEST_SUITE_P(Wire, HalfPayloads,
                         ::testing::Values(MessageType::gossip_params_f16,
                                           MessageType::model_reply_f16,
                                           MessageType::model_update_f16),
                         [](const auto& type_info) {
                           std::string name(to_string(type_info.param));
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

// An int8 payload (gossip/int8_blocks.h): a valid one decodes; a length no value count gives,
// a non-finite scale, and a flipped code byte are refused, each for its own reason.
TEST(Wire, Int8PayloadsAreCheckedByTheirLayout) {
  auto with_payload = [](Frames f, std::vector<std::byte> payload) {
    f.data[1] = std::move(payload);
    f.data[0] = bytes_of(encode_header([&] {
      Header h;
      h.type = MessageType::gossip_params_int8;
      h.sender = 2;
      h.fingerprint = kFingerprint;
      h.payload_bytes = f.data[1].size();
      h.payload_crc = payload_checksum(std::span<const std::byte>(f.data[1]));
      return h;
    }()));
    return f;
  };
  const std::vector<float> values(300, 0.5f);  // two blocks: 2 scales and 300 codes
  {
    Frames f = int8_message(values);
    Decoded d = decode_message(f.views(), kContext);
    ASSERT_FALSE(d.error.has_value()) << to_string(*d.error);
    EXPECT_EQ(d.header.payload_bytes, 308u);
    EXPECT_EQ(d.header.type, MessageType::gossip_params_int8);
  }
  {
    // 261 bytes: two scales would leave 253 codes, one block's worth, and one scale 257 codes,
    // two blocks' worth; no number of values gives it (sent with a correct checksum). (A
    // payload merely one code short is a valid one of 299 values, which the averager leaves
    // out as the wrong size.)
    Frames f = int8_message(values);
    std::vector<std::byte> payload = f.data[1];
    payload.resize(261);
    EXPECT_EQ(reason_of(with_payload(f, payload)), RejectReason::length_mismatch);
  }
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    Frames f = int8_message(values);
    std::vector<std::byte> payload = f.data[1];
    std::memcpy(payload.data() + sizeof(float), &bad, sizeof bad);  // the second block's scale
    EXPECT_EQ(reason_of(with_payload(f, payload)), RejectReason::non_finite);
  }
  {
    Frames f = int8_message(values);
    f.data[1][100] ^= std::byte{0x01};  // a code
    EXPECT_EQ(reason_of(f), RejectReason::checksum_mismatch);
  }
  EXPECT_TRUE(is_gossip_payload(MessageType::gossip_params_int8));
  EXPECT_FALSE(has_half_payload(MessageType::gossip_params_int8));
}

TEST(Wire, AllFiniteFindsSpecialValuesAnywhere) {
  std::vector<float> v(1001, 1.0f);
  EXPECT_TRUE(all_finite(v));
  v[1000] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(all_finite(v));
  v[1000] = std::numeric_limits<float>::max();
  EXPECT_TRUE(all_finite(v));
  v[0] = std::numeric_limits<float>::denorm_min();
  EXPECT_TRUE(all_finite(v));
  // Unaligned bytes are fine too.
  std::vector<std::byte> raw(4 * 5 + 1);
  float inf = std::numeric_limits<float>::infinity();
  std::memcpy(raw.data() + 1 + 8, &inf, 4);
  EXPECT_FALSE(all_finite_bytes(std::span(raw.data() + 1, 20)));
}

}  // namespace
}  // namespace starling::gossip
