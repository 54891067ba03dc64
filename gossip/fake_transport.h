#pragma once
// An in-process network of N transports for unit tests: messages are encoded, copied and fed
// through the same InboundPipeline as the ZeroMQ transport, synchronously on the sender's
// thread. Tests can kill and revive nodes and cut links; liveness is declared, not timed.
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "gossip/inbound.h"
#include "gossip/transport.h"

namespace starling::gossip {

class FakeNetwork;

class FakeTransport final : public Transport {
 public:
  FakeTransport(FakeNetwork& network, std::size_t self, std::vector<std::string> ids,
                InboundPolicy policy, std::size_t mailbox_limit);

  std::size_t self() const override { return self_; }
  std::size_t size() const override { return peers_.size(); }
  void send(std::size_t peer, OutgoingMessage message) override;
  Mailbox& mailbox() override { return mailbox_; }
  PeerTable& peers() override { return peers_; }
  void set_progress(std::uint64_t next_round, std::uint64_t step) override;

  std::uint64_t fingerprint() const { return fingerprint_; }
  // Feeds raw frames to this node as if `sender` had sent them (forged or garbage messages).
  void inject(std::optional<std::size_t> sender, const std::vector<std::vector<std::byte>>& frames);

 private:
  friend class FakeNetwork;
  FakeNetwork& network_;
  std::size_t self_;
  std::uint64_t fingerprint_;
  PeerTable peers_;
  Mailbox mailbox_;
  InboundPipeline pipeline_;

 public:
  // The receive path, for ring links that feed it (tests/gossip/ring_links_test.cc).
  InboundPipeline& pipeline() { return pipeline_; }
};

class FakeNetwork {
 public:
  // All nodes share `fingerprint`; every node may gossip with every other unless
  // `gossip_neighbours` (per node) says otherwise.
  FakeNetwork(std::vector<std::string> ids, std::uint64_t fingerprint,
              std::vector<std::vector<bool>> gossip_neighbours = {},
              std::size_t mailbox_limit = 256);

  std::size_t size() const { return nodes_.size(); }
  FakeTransport& node(std::size_t i) { return *nodes_[i]; }

  // A killed node neither sends nor receives; every other node sees it dead at once.
  void kill(std::size_t node);
  void revive(std::size_t node);
  // Messages from `from` to `to` vanish (one direction).
  void cut(std::size_t from, std::size_t to);
  void heal(std::size_t from, std::size_t to);
  bool alive(std::size_t node) const;

 private:
  friend class FakeTransport;
  void route(std::size_t from, std::size_t to, const OutgoingMessage& message);

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<FakeTransport>> nodes_;
  std::vector<bool> alive_;
  std::set<std::pair<std::size_t, std::size_t>> cut_;
  std::uint64_t incarnation_ = 1;
  std::vector<std::uint64_t> incarnations_;
};

}  // namespace starling::gossip
