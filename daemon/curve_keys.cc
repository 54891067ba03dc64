#include "daemon/curve_keys.h"

#include "daemon/runtime_paths.h"
#include "topology/cluster_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace starling::daemon {

KeyPair generate_key_pair() {
  char public_key[41] = {};
  char secret_key[41] = {};
  if (zmq_curve_keypair(public_key, secret_key) != 0) {
    throw KeyError(std::string("cannot make a CURVE key pair: ") + zmq_strerror(zmq_errno()) +
                   " (is libzmq built with libsodium?)");
  }
  return {public_key, secret_key};
}

void write_secret_key_file(const std::string& path, const std::string& secret_key) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw KeyError(path + ": " + std::strerror(errno) +
                   (errno == EEXIST ? " (a key file is never replaced; remove it first)" : ""));
  }
  const std::string text = secret_key + "\n";
  const bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  const int saved = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    throw KeyError(path + ": " + std::strerror(saved));
  }
}

namespace {

// The secret key in `path` and its public half. Refused, with the file named: a file that
// cannot be read, one that group or others may read, anything but 40 Z85 characters (and a
// final newline).
KeyPair read_secret_key_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw KeyError(path + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) throw KeyError(path + ": not a regular file");
  if ((st.st_mode & 077) != 0) {
    throw KeyError(path + ": group or others may read this secret key; chmod 600 it (and make "
                   "a new key pair if others did read it)");
  }
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) throw KeyError(path + ": cannot be read");
  std::string key = text.str();
  if (!key.empty() && key.back() == '\n') key.pop_back();
  std::uint8_t binary[32];
  if (key.size() != 40 || !zmq_z85_decode(binary, key.c_str())) {
    throw KeyError(path + ": not a CURVE secret key (40 characters of Z85, as starlingctl keygen "
                   "writes)");
  }
  char derived[41] = {};
  if (zmq_curve_public(derived, key.c_str()) != 0) {
    throw KeyError(path + ": " + zmq_strerror(zmq_errno()));
  }
  return {derived, key};
}

}  // namespace

std::string load_secret_key(const topology::NodeSpec& node) {
  const std::string& path = node.secret_key_file;
  if (path.empty()) {
    throw KeyError("node " + node.id + " has a public_key but no secret_key_file: this node cannot "
                   "prove its identity (starlingctl keygen FILE makes a key pair)");
  }
  KeyPair pair;
  try {
    pair = read_secret_key_file(path);
  } catch (const KeyError& e) {
    throw KeyError("node " + node.id + "'s secret_key_file " + e.what());
  }
  if (node.public_key != pair.public_key) {
    throw KeyError(path + ": this secret key belongs to the public key " + pair.public_key +
                   ", not to node " + node.id + "'s public_key " + node.public_key);
  }
  return pair.secret_key;
}

bool has_curve_keys(const topology::ClusterSpec& spec) {
  return !spec.nodes.empty() && !spec.nodes.front().public_key.empty();
}

bool control_uses_curve(const topology::ClusterSpec& spec, std::size_t node) {
  return has_curve_keys(spec) && control_endpoint(spec, node).rfind("tcp://", 0) == 0;
}

namespace {

// Whether a tcp:// endpoint's host is this machine's loopback (127.0.0.0/8, ::1, localhost,
// or ZeroMQ's name for the loopback interface).
bool loopback_host(const std::string& host) {
  return host.rfind("127.", 0) == 0 || host == "[::1]" || host == "::1" ||
         host == "localhost" || host == "lo";
}

}  // namespace

std::vector<std::string> unprotected_endpoint_warnings(const topology::ClusterSpec& spec,
                                                       std::size_t node) {
  std::vector<std::string> warnings;
  if (has_curve_keys(spec)) return warnings;
  const auto exposed = [](const std::string& endpoint) {
    const auto host = topology::tcp_endpoint_host(endpoint);
    return host && !loopback_host(*host);
  };
  const std::string data = spec.nodes.at(node).endpoint;
  if (spec.sync.mode != "local" && exposed(data)) {  // local mode binds no data endpoint
    warnings.push_back("the data endpoint " + data + " is not on loopback and the cluster has no "
                       "CURVE keys: anyone who can reach it can send this node models to mix "
                       "in; give every node a public_key and secret_key_file (README "
                       "\"Security\")");
  }
  const std::string control = control_endpoint(spec, node);
  if (exposed(control)) {
    warnings.push_back("the control endpoint " + control + " is not on loopback and the cluster "
                       "has no CURVE keys: anyone who can reach it can stop or pause this node; "
                       "give every node keys, or use an ipc:// control endpoint (README "
                       "\"Security\")");
  }
  return warnings;
}

KeyPair control_client_key(const topology::ClusterSpec& spec, const std::string& key_file) {
  if (!key_file.empty()) {
    KeyPair pair = read_secret_key_file(key_file);
    for (const auto& node : spec.nodes) {
      if (node.public_key == pair.public_key) return pair;
    }
    throw KeyError(key_file + ": its public key " + pair.public_key + " is not a node's " +
                   "public_key in " + spec.file + ", so the nodes would refuse it");
  }
  std::string tried;
  for (const auto& node : spec.nodes) {
    if (node.secret_key_file.empty()) continue;
    try {
      return {node.public_key, load_secret_key(node)};
    } catch (const KeyError& e) {
      tried += std::string("\n  ") + e.what();
    }
  }
  throw KeyError("the control sockets of this cluster are encrypted, and no node's "
                 "secret_key_file can be read here; pass --key FILE with a node's secret key" +
                 (tried.empty() ? std::string() : ". Tried:" + tried));
}

}  // namespace starling::daemon
