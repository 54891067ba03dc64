#pragma once
// Reading IDX files (the format of MNIST and Fashion-MNIST), gzipped or not, with no LibTorch.
// Only unsigned-byte payloads (type code 0x08) are accepted: that is what both datasets use.
//
// Every check failure is a TrainingError whose message starts with the file's path: a missing
// file, one that is not IDX (wrong magic), unexpected rank or dimensions, or a payload shorter
// or longer than the header promises.
#include <cstdint>
#include <string>
#include <vector>

namespace starling::training {

struct IdxArray {
  std::vector<std::int64_t> dims;  // outermost first; dims[0] is the item count
  std::vector<std::uint8_t> data;  // row-major, product(dims) bytes
};

// Reads `path`; the header must have `expected_rank` dimensions.
IdxArray read_idx_file(const std::string& path, std::size_t expected_rank);

}  // namespace starling::training
