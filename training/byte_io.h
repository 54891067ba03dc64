#pragma once
// Little-endian encoding of integers, doubles and float arrays into byte vectors, with a reader
// that checks every length against what is left (so a corrupt length cannot read past the end).
#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "training/trainer.h"

namespace starling::training {

// Float arrays are stored as the host's bytes; every platform LibTorch supports for Starling is
// little-endian, and this assertion keeps a big-endian build from writing unreadable files.
static_assert(std::endian::native == std::endian::little,
              "checkpoint encoding assumes a little-endian host");

class ByteWriter {
 public:
  void u32(std::uint32_t v) { put_le(v, 4); }
  void u64(std::uint64_t v) { put_le(v, 8); }
  void i64(std::int64_t v) { put_le(static_cast<std::uint64_t>(v), 8); }
  void f64(double v) { u64(std::bit_cast<std::uint64_t>(v)); }
  void bytes(std::span<const std::uint8_t> data) { out_.insert(out_.end(), data.begin(), data.end()); }
  void string(const std::string& s) {
    u32(static_cast<std::uint32_t>(s.size()));
    out_.insert(out_.end(), s.begin(), s.end());
  }
  std::vector<std::uint8_t>& buffer() { return out_; }

 private:
  void put_le(std::uint64_t v, int width) {
    for (int i = 0; i < width; ++i) out_.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  std::vector<std::uint8_t> out_;
};

class ByteReader {
 public:
  // `what` names the thing being read (a file, a section) in errors.
  ByteReader(std::span<const std::uint8_t> data, std::string what)
      : data_(data), what_(std::move(what)) {}

  std::uint32_t u32() { return static_cast<std::uint32_t>(get_le(4)); }
  std::uint64_t u64() { return get_le(8); }
  std::int64_t i64() { return static_cast<std::int64_t>(get_le(8)); }
  double f64() { return std::bit_cast<double>(get_le(8)); }
  std::span<const std::uint8_t> bytes(std::uint64_t count) {
    need(count);
    auto out = data_.subspan(position_, static_cast<std::size_t>(count));
    position_ += static_cast<std::size_t>(count);
    return out;
  }
  std::string string() {
    auto raw = bytes(u32());
    return std::string(raw.begin(), raw.end());
  }
  std::size_t remaining() const { return data_.size() - position_; }

 private:
  void need(std::uint64_t count) const {
    if (count > remaining()) {
      throw TrainingError(what_ + ": truncated or corrupt (needs " + std::to_string(count) +
                          " more bytes at offset " + std::to_string(position_) + ", has " +
                          std::to_string(remaining()) + ")");
    }
  }
  std::uint64_t get_le(int width) {
    auto raw = bytes(static_cast<std::uint64_t>(width));
    std::uint64_t v = 0;
    for (int i = 0; i < width; ++i) v |= std::uint64_t{raw[static_cast<std::size_t>(i)]} << (8 * i);
    return v;
  }

  std::span<const std::uint8_t> data_;
  std::string what_;
  std::size_t position_ = 0;
};

}  // namespace starling::training
