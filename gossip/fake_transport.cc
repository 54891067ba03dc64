#include "gossip/fake_transport.h"

#include <cstring>
#include <stdexcept>

namespace starling::gossip {

FakeTransport::FakeTransport(FakeNetwork& network, std::size_t self, std::vector<std::string> ids,
                             InboundPolicy policy, std::size_t mailbox_limit)
    : network_(network),
      self_(self),
      fingerprint_(policy.fingerprint),
      peers_(ids, self, PeerTiming{}),
      mailbox_(ids.size(), mailbox_limit),
      pipeline_(self, std::move(policy), peers_, mailbox_) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (i != self) peers_.declare(i, PeerState::alive);
  }
}

void FakeTransport::send(std::size_t peer, OutgoingMessage message) {
  if (peer >= size() || peer == self_) {
    throw std::invalid_argument("FakeTransport::send: bad peer index " + std::to_string(peer));
  }
  network_.route(self_, peer, message);
}

void FakeTransport::set_progress(std::uint64_t, std::uint64_t) {}

void FakeTransport::inject(std::optional<std::size_t> sender,
                           const std::vector<std::vector<std::byte>>& frames) {
  auto owner = std::make_shared<std::vector<std::vector<std::byte>>>(frames);
  std::vector<std::span<const std::byte>> views(owner->begin(), owner->end());
  pipeline_.handle(sender, views, owner);
}

FakeNetwork::FakeNetwork(std::vector<std::string> ids, std::uint64_t fingerprint,
                         std::vector<std::vector<bool>> gossip_neighbours,
                         std::size_t mailbox_limit)
    : alive_(ids.size(), true), incarnations_(ids.size(), 1) {
  for (std::size_t i = 0; i < ids.size(); ++i) {
    InboundPolicy policy;
    policy.fingerprint = fingerprint;
    policy.gossip_neighbours = gossip_neighbours.empty() ? std::vector<bool>(ids.size(), true)
                                                         : gossip_neighbours[i];
    nodes_.push_back(std::make_unique<FakeTransport>(*this, i, ids, policy, mailbox_limit));
  }
}

void FakeNetwork::kill(std::size_t node) {
  {
    std::lock_guard lock(mutex_);
    alive_[node] = false;
  }
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (i == node) continue;
    nodes_[i]->peers_.declare(node, PeerState::dead);
    nodes_[i]->mailbox_.wake_all();
  }
}

void FakeNetwork::revive(std::size_t node) {
  {
    std::lock_guard lock(mutex_);
    alive_[node] = true;
    incarnations_[node] = ++incarnation_;  // a revived node is a new process
  }
  for (std::size_t i = 0; i < nodes_.size(); ++i) {
    if (i != node) nodes_[i]->peers_.declare(node, PeerState::alive);
  }
}

void FakeNetwork::cut(std::size_t from, std::size_t to) {
  std::lock_guard lock(mutex_);
  cut_.emplace(from, to);
}

void FakeNetwork::heal(std::size_t from, std::size_t to) {
  std::lock_guard lock(mutex_);
  cut_.erase({from, to});
}

bool FakeNetwork::alive(std::size_t node) const {
  std::lock_guard lock(mutex_);
  return alive_[node];
}

void FakeNetwork::route(std::size_t from, std::size_t to, const OutgoingMessage& m) {
  std::uint64_t incarnation;
  {
    std::lock_guard lock(mutex_);
    if (!alive_[from]) return;  // a dead process sends nothing
    if (!alive_[to] || cut_.count({from, to})) {
      nodes_[from]->peers_.on_send_failure(to);
      nodes_[from]->mailbox_.wake_all();  // as the ZeroMQ transport does
      return;
    }
    incarnation = incarnations_[from];
  }
  Header h;
  h.type = m.type;
  h.sender = static_cast<std::uint32_t>(from);
  h.incarnation = incarnation;
  h.tag = m.tag;
  h.fingerprint = nodes_[from]->fingerprint_;
  h.aux0 = m.aux0;
  h.aux1 = m.aux1;
  std::vector<std::vector<std::byte>> frames;
  auto head = encode_header(h);
  if (carries_payload(m.type)) {
    // Patch the header's payload fields, then copy the payload as a network would.
    h.payload_bytes = m.payload.bytes.size();
    h.payload_crc = m.payload.crc;
    head = encode_header(h);
    frames.emplace_back(head.begin(), head.end());
    frames.emplace_back(m.payload.bytes.begin(), m.payload.bytes.end());
  } else {
    frames.emplace_back(head.begin(), head.end());
  }
  nodes_[from]->peers_.on_sent(to, kHeaderSize + h.payload_bytes);
  nodes_[to]->inject(from, frames);
}

}  // namespace starling::gossip
