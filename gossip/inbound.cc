#include "gossip/inbound.h"

#include <spdlog/spdlog.h>

namespace starling::gossip {

std::uint64_t monotonic_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

InboundPipeline::InboundPipeline(std::size_t self, InboundPolicy policy, PeerTable& peers,
                                 Mailbox& mailbox)
    : self_(self), policy_(std::move(policy)), peers_(peers), mailbox_(mailbox) {}

void InboundPipeline::reject(std::optional<std::size_t> peer, RejectReason reason,
                             const Header* header, std::uint16_t version) {
  if (reason == RejectReason::late) {
    // Expected when a neighbour is slower than our round timeout; counted, not logged.
    if (peer) peers_.on_rejected(*peer, reason);
    return;
  }
  bool first = peer ? peers_.on_rejected(*peer, reason) : peers_.on_rejected_unknown(reason);
  if (!first) return;
  std::string from = peer ? peers_.id(*peer) : std::string("an unknown connection");
  if (reason == RejectReason::fingerprint_mismatch && header) {
    spdlog::error("refusing {}: it runs a different model or cluster configuration (fingerprint "
                  "{:016x}, ours {:016x}); every node must run the same cluster file: the same "
                  "cluster name, seed and node ids, [training] model, dataset, partition, "
                  "max_train_samples, batch_size, epochs and max_steps, [topology], and [sync] "
                  "mode, period, staleness, wire_precision, allreduce, delta, final_rounds and "
                  "final_allreduce",
                  from, header->fingerprint, policy_.fingerprint);
    return;
  }
  if (reason == RejectReason::bad_version) {
    spdlog::error("refusing {}: it speaks Starling protocol version {}, this node {}; every node "
                  "of a cluster must run the same Starling release",
                  from, version, kProtocolVersion);
    return;
  }
  spdlog::warn("rejected a {}message from {}: {} (further rejections of this kind from this "
               "peer are only counted)",
               header ? std::string(to_string(header->type)) + " " : std::string(), from,
               to_string(reason));
}

InboundAction InboundPipeline::handle(std::optional<std::size_t> transport_sender,
                                      std::span<const std::span<const std::byte>> frames,
                                      std::shared_ptr<const void> owner) {
  InboundAction action;
  if (!transport_sender || *transport_sender == self_) {
    reject(std::nullopt, RejectReason::unknown_sender, nullptr);
    return action;
  }
  const std::size_t peer = *transport_sender;
  DecodeContext context{static_cast<std::uint32_t>(peers_.size()), policy_.fingerprint,
                        static_cast<std::uint32_t>(peer)};
  Decoded decoded = decode_message(frames, context);
  if (decoded.error) {
    if (*decoded.error == RejectReason::fingerprint_mismatch) peers_.on_fingerprint_mismatch(peer);
    reject(peer, *decoded.error, decoded.header_parsed ? &decoded.header : nullptr,
           decoded.version);
    return action;
  }
  const Header& header = decoded.header;
  std::size_t bytes = 0;
  for (auto frame : frames) bytes += frame.size();

  if (is_gossip_payload(header.type) &&
      (peer >= policy_.gossip_neighbours.size() || !policy_.gossip_neighbours[peer])) {
    reject(peer, RejectReason::not_a_neighbour, &header);
    return action;
  }

  switch (header.type) {
    case MessageType::heartbeat:
      peers_.on_received(peer, bytes, header.incarnation, std::chrono::steady_clock::now());
      peers_.on_heartbeat(peer, header.tag, header.aux1 & ~kHeartbeatPausedBit,
                          (header.aux1 & kHeartbeatPausedBit) != 0);
      // Waiters re-check their give-up conditions, which read what heartbeats report (a pause,
      // a neighbour's round).
      mailbox_.wake_all();
      action.send_heartbeat_ack = true;
      action.echo = header.aux0;
      return action;
    case MessageType::heartbeat_ack: {
      peers_.on_received(peer, bytes, header.incarnation, std::chrono::steady_clock::now());
      std::uint64_t now = monotonic_ns();
      if (header.aux0 <= now) peers_.on_rtt(peer, std::chrono::nanoseconds(now - header.aux0));
      // A restarted peer listens on a new port: every ack says where, the newest wins.
      if (header.aux1 <= 0xFFFF) peers_.on_ring_port(peer, static_cast<std::uint16_t>(header.aux1));
      return action;
    }
    default: break;
  }

  std::span<const std::byte> payload = frames.size() > 1 ? frames[1] : std::span<const std::byte>{};
  if (auto refused = mailbox_.deliver(ReceivedMessage(header, std::move(owner), payload))) {
    // A late message is authentic and proves the peer is alive; other refusals prove nothing.
    if (*refused == RejectReason::late) {
      peers_.on_received(peer, bytes, header.incarnation, std::chrono::steady_clock::now());
    }
    reject(peer, *refused, &header);
    return action;
  }
  peers_.on_received(peer, bytes, header.incarnation, std::chrono::steady_clock::now());
  return action;
}

}  // namespace starling::gossip
