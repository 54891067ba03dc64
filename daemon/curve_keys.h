#pragma once
// CURVE key pairs for Starling nodes (README "Security"): made by `starlingctl keygen`, the
// public half listed in the cluster file, the secret half in a file only its owner can read.
#include <stdexcept>
#include <string>

#include "topology/cluster_spec.h"

namespace starling::daemon {

class KeyError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct KeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

KeyPair generate_key_pair();

// Writes `secret_key` to `path` (a new file, mode 0600; refuses to replace an existing one)
// and syncs it.
void write_secret_key_file(const std::string& path, const std::string& secret_key);

// Reads the secret key of `node` from its secret_key_file. Refused, with the file named: no
// file set, a file that cannot be read, one that group or others may read, anything but 40
// Z85 characters (and a final newline), or a key whose public half is not the node's
// public_key.
std::string load_secret_key(const topology::NodeSpec& node);

}  // namespace starling::daemon
