#pragma once
// Waiting for input on ZeroMQ sockets and plain file descriptors with one poll(2), asking a
// ZeroMQ socket for its ZMQ_EVENTS only when they may have changed.
//
// Why not zmq_poll: it asks every ZeroMQ socket in the set for ZMQ_EVENTS before and after
// its poll(2), and each such question costs two syscalls (libzmq's fork check, getpid, and a
// zero-timeout poll of the socket's command mailbox), idle sockets included. The transport's
// set holds 2N ZeroMQ sockets at world N, most of them idle (socket monitors, dealers to peers
// outside the current exchange), so zmq_poll paid about 4N syscalls per pass. Replacing it cut
// a 1 MiB collective at world 4 from 261 to 173 syscalls per rank, which matters on a guest
// whose syscalls are hypercalls (see bench/RESULTS-allreduce.md).
//
// The contract ZeroMQ gives for a socket's ZMQ_FD (zmq_getsockopt(3)): it becomes readable
// when the socket's state may have changed, and only then; reading ZMQ_EVENTS (or any send or
// receive on the socket) processes the pending commands and resets it. So a socket needs asking
// only when
//   - its ZMQ_FD is readable,
//   - the caller sent on it or otherwise used it since it was last asked (that use may have
//     consumed the signal of a message that arrived meanwhile): the caller says so, touch();
//   - it was last reported readable and the caller may have left messages in it.
// A socket whose last operation was a receive that found nothing (EAGAIN) is settled: that
// receive processed the pending commands, so any later arrival signals ZMQ_FD again. The
// caller may say so with drained(), to save the question.
//
// Not thread-safe: one thread owns the set and its sockets, as ZeroMQ sockets require.
#include <poll.h>

#include <chrono>
#include <cstddef>
#include <vector>
#include <zmq.hpp>

namespace starling::gossip {

class ZmqPollSet {
 public:
  using Handle = std::size_t;

  // Members are watched for input (ZMQ_POLLIN) from the next wait() on. A new ZeroMQ socket is
  // asked at the first wait (it may already hold messages). The socket must outlive the set.
  // Handles count up from 0 in the order members are added.
  Handle add(zmq::socket_t& socket);
  Handle add_fd(int fd);

  // Blocks until a member has input or `timeout` passes (at once if one already has), and
  // returns the members with input, each once, in the order they were added. Empty on a
  // timeout or a signal (EINTR). A ZeroMQ socket it reports is asked again at the next wait,
  // unless drained() says its caller read it empty. Throws zmq::error_t (ZeroMQ) or
  // std::system_error (poll).
  const std::vector<Handle>& wait(std::chrono::milliseconds timeout);

  // The caller sent on, connected, disconnected or otherwise used this ZeroMQ socket: ask it
  // at the next wait.
  void touch(Handle socket);
  // The caller's last operation on this ZeroMQ socket was a receive that found nothing: it
  // need not be asked until its ZMQ_FD says so. (Must not follow a later touch.)
  void drained(Handle socket);

  // How many ZMQ_EVENTS questions the set has asked; for tests and diagnostics.
  std::size_t questions_asked() const { return questions_; }

 private:
  bool has_input(Handle socket);  // asks ZMQ_EVENTS

  std::vector<zmq::socket_t*> sockets_;  // nullptr for a plain fd
  std::vector<pollfd> fds_;              // same index as sockets_
  std::vector<bool> ask_;                // ZeroMQ sockets to ask at the next wait
  std::vector<bool> reported_;           // scratch for wait()
  std::vector<Handle> ready_;
  std::size_t questions_ = 0;
};

}  // namespace starling::gossip
