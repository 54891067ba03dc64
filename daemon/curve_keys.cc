#include "daemon/curve_keys.h"

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

std::string load_secret_key(const topology::NodeSpec& node) {
  const std::string& path = node.secret_key_file;
  if (path.empty()) {
    throw KeyError("node " + node.id + " has a public_key but no secret_key_file: this node cannot "
                   "prove its identity (starlingctl keygen FILE makes a key pair)");
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    throw KeyError("node " + node.id + "'s secret_key_file " + path + ": " + std::strerror(errno));
  }
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
  if (node.public_key != derived) {
    throw KeyError(path + ": this secret key belongs to the public key " + std::string(derived) +
                   ", not to node " + node.id + "'s public_key " + node.public_key);
  }
  return key;
}

}  // namespace starling::daemon
