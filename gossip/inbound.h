#pragma once
// InboundPipeline: the receive path shared by every transport. Given the frames of one message
// and the sender the transport vouches for, it validates (wire.h), applies the per-type sender
// policy, accounts in the peer table, logs the first rejection per peer and reason, and either
// files the message in the mailbox or handles it (heartbeats).
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "gossip/mailbox.h"
#include "gossip/peer_table.h"
#include "gossip/wire.h"

namespace starling::gossip {

struct InboundPolicy {
  std::uint64_t fingerprint = 0;
  // gossip_neighbours[j]: j may send us gossip payloads (it is a neighbour in some round).
  std::vector<bool> gossip_neighbours;
};

// What the transport must do after a message was handled.
struct InboundAction {
  bool send_heartbeat_ack = false;
  std::uint64_t echo = 0;  // timestamp to echo in the ack
};

class InboundPipeline {
 public:
  InboundPipeline(std::size_t self, InboundPolicy policy, PeerTable& peers, Mailbox& mailbox);

  // `transport_sender` is nullopt when the connection's identity is not a cluster node.
  // `owner` keeps the frames' memory alive for a message that is filed in the mailbox.
  // Whether `peer` may send this node gossip payloads (a neighbour in some round).
  bool may_send_gossip(std::size_t peer) const {
    return peer < policy_.gossip_neighbours.size() && policy_.gossip_neighbours[peer];
  }

  InboundAction handle(std::optional<std::size_t> transport_sender,
                       std::span<const std::span<const std::byte>> frames,
                       std::shared_ptr<const void> owner);

 private:
  // Counts the rejection and logs the first of its kind from each peer. `version` is the
  // sender's protocol version, for a bad_version rejection.
  void reject(std::optional<std::size_t> peer, RejectReason reason, const Header* header,
              std::uint16_t version = 0);

  std::size_t self_;
  InboundPolicy policy_;
  PeerTable& peers_;
  Mailbox& mailbox_;
};

std::uint64_t monotonic_ns();

}  // namespace starling::gossip
