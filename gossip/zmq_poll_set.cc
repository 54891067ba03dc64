#include "gossip/zmq_poll_set.h"

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace starling::gossip {

ZmqPollSet::Handle ZmqPollSet::add(zmq::socket_t& socket) {
  sockets_.push_back(&socket);
  fds_.push_back(pollfd{socket.get(zmq::sockopt::fd), POLLIN, 0});
  ask_.push_back(true);
  reported_.push_back(false);
  return sockets_.size() - 1;
}

ZmqPollSet::Handle ZmqPollSet::add_fd(int fd) {
  sockets_.push_back(nullptr);
  fds_.push_back(pollfd{fd, POLLIN, 0});
  ask_.push_back(false);
  reported_.push_back(false);
  return sockets_.size() - 1;
}

void ZmqPollSet::touch(Handle socket) { ask_.at(socket) = true; }

void ZmqPollSet::drained(Handle socket) { ask_.at(socket) = false; }

bool ZmqPollSet::has_input(Handle socket) {
  ++questions_;
  return (sockets_[socket]->get(zmq::sockopt::events) & ZMQ_POLLIN) != 0;
}

const std::vector<ZmqPollSet::Handle>& ZmqPollSet::wait(std::chrono::milliseconds timeout) {
  ready_.clear();
  reported_.assign(sockets_.size(), false);
  // Sockets whose readiness ZMQ_FD may not show. Asking resets the flag: from here on their
  // ZMQ_FD signals any change.
  bool any_ready = false;
  for (Handle h = 0; h < sockets_.size(); ++h) {
    if (!ask_[h]) continue;
    ask_[h] = false;
    if (has_input(h)) reported_[h] = any_ready = true;
  }
  // One poll(2) for everything else; without waiting when a socket is known to have input.
  const int wait_ms = any_ready ? 0 : static_cast<int>(std::max<long long>(0, timeout.count()));
  const int n = ::poll(fds_.data(), fds_.size(), wait_ms);
  if (n < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "poll");
  if (n > 0) {
    for (Handle h = 0; h < sockets_.size(); ++h) {
      if (fds_[h].revents == 0 || reported_[h]) continue;
      // A ZeroMQ socket's ZMQ_FD says only that something changed; ZMQ_EVENTS says what.
      if (sockets_[h] == nullptr || has_input(h)) reported_[h] = true;
    }
  }
  for (Handle h = 0; h < sockets_.size(); ++h) {
    if (!reported_[h]) continue;
    ready_.push_back(h);
    // The caller reads it now, and may stop before it is empty.
    if (sockets_[h] != nullptr) ask_[h] = true;
  }
  return ready_;
}

}  // namespace starling::gossip
