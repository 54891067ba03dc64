#pragma once
// CURVE key pairs for Starling nodes (README "Security"): made by `starlingctl keygen`, the
// public half listed in the cluster file, the secret half in a file only its owner can read.
#include <stdexcept>
#include <string>
#include <vector>

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

// Whether the cluster's nodes have CURVE keys (they all have, or none: the parser checks).
bool has_curve_keys(const topology::ClusterSpec& spec);

// Whether node `node`'s control socket is encrypted: its cluster has keys and its control
// endpoint is tcp:// (an ipc:// one lies in a directory only its user may enter).
bool control_uses_curve(const topology::ClusterSpec& spec, std::size_t node);

// What a node without CURVE keys exposes beyond this host: one warning per tcp:// endpoint of
// node `node` (data, unless it trains alone in local mode; control) whose host is not a
// loopback address, saying who could use it
// for what. Empty for a keyed cluster, and for loopback and ipc:// endpoints. starlingd logs
// them at start: an open port is the operator's choice, but not one to make unknowingly.
std::vector<std::string> unprotected_endpoint_warnings(const topology::ClusterSpec& spec,
                                                       std::size_t node);

// The key pair starlingctl presents to the nodes' encrypted control sockets (README
// "Security"): the secret key in `key_file` when given, which must belong to one of the
// nodes' public keys; else that of the first node whose secret_key_file can be read here.
// Throws KeyError saying what was tried.
KeyPair control_client_key(const topology::ClusterSpec& spec, const std::string& key_file);

}  // namespace starling::daemon
