#pragma once
// Transport: how sync algorithms reach the other nodes of the cluster. Implementations: a
// ZeroMQ transport (zmq_transport.h) between processes, and an in-process fake
// (fake_transport.h) for unit tests. Algorithms are written against this interface only.
//
// send() never blocks: it queues, and a peer that cannot be reached is counted as a send
// failure in the peer table (the receiver's timeout then handles it). Received messages are
// validated before they reach the mailbox.
#include <cstddef>
#include <chrono>
#include <cstdint>

#include "gossip/mailbox.h"
#include "gossip/message.h"
#include "gossip/peer_table.h"
#include "gossip/ring_links.h"

namespace starling::gossip {

class Transport {
 public:
  virtual ~Transport() = default;

  virtual std::size_t self() const = 0;
  virtual std::size_t size() const = 0;
  virtual void send(std::size_t peer, OutgoingMessage message) = 0;
  virtual Mailbox& mailbox() = 0;
  virtual PeerTable& peers() = 0;
  // What heartbeats report to peers: the next gossip round and the training step.
  virtual void set_progress(std::uint64_t next_round, std::uint64_t step) = 0;
  // Whether heartbeats say this node's training is paused (peers then do not wait for it).
  virtual void set_paused(bool /*paused*/) {}
  // The longest a sent payload may stay held after its peer vanished (until the connection is
  // given up and what is queued on it freed); zero when sends never hold payloads.
  virtual std::chrono::milliseconds release_bound() const { return std::chrono::milliseconds(0); }
  // Plain TCP links to ring neighbours for the chunks of a ring allreduce (ring_links.h), or
  // nullptr when collectives go through send() and the mailbox. Every node of a cluster must
  // answer alike (the cluster file decides), or neighbours would wait on different channels.
  virtual RingLinks* ring_links() { return nullptr; }
};

}  // namespace starling::gossip
