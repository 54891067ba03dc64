#pragma once
// ZmqTransport: the Transport between processes, over ZeroMQ.
//
// Sockets (all owned by one network thread, as ZeroMQ requires):
//   - a ROUTER inbox bound at this node's endpoint; peers' DEALERs connect to it and announce
//     their node id as routing id. It only ever sends heartbeat acks back (ROUTER_MANDATORY:
//     an ack to a vanished peer fails loudly instead of being dropped silently);
//   - one DEALER per peer, connected to the peer's inbox, with IMMEDIATE (nothing queues for a
//     peer that is not connected: a send to a dead peer fails at once and is counted),
//     reconnect backoff, bounded linger and a send high-water mark;
//   - ZMTP heartbeats on every connection, so a half-open TCP connection is noticed (after
//     twice dead_after without traffic following a PING: closing a connection drops what is
//     queued on it, and over a slow link a peer's answers are seconds late; PINGs go out every
//     quarter of that, since the node's own heartbeats already cross every connection);
//   - a monitor on the inbox that counts connections failing the handshake (garbage bytes);
//   - a monitor on each DEALER: its connection closing tells the peer table at once that the
//     peer's process is gone (PeerTable::connection_lost), its handshake that it is back.
// Other threads hand messages over through a mutex-protected queue and an eventfd that wakes
// the network thread's poll. Payloads are sent zero-copy: the ZeroMQ message keeps the
// payload's owner alive until the I/O thread is done with it.
//
// Test hooks (never on in production configs): drop a fraction of outgoing messages, or delay
// them, to test timeouts and fault handling without tc/netem.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gossip/fault_injection.h"
#include "gossip/inbound.h"
#include "gossip/transport.h"

namespace starling::gossip {

class TransportError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ZmqTransportOptions {
  std::vector<std::string> ids;        // node ids, in cluster order
  std::vector<std::string> endpoints;  // data endpoints, same order
  std::size_t self = 0;
  std::uint64_t incarnation = 0;       // distinguishes this process from earlier ones of the node
  InboundPolicy policy;
  std::size_t max_payload_bytes = 0;   // largest payload accepted (MAXMSGSIZE)
  std::chrono::milliseconds heartbeat{200};
  PeerTiming timing;
  std::size_t mailbox_per_sender_limit = 256;
  std::chrono::milliseconds linger{500};
  FaultInjection faults;
  // CURVE: every node's public key (Z85, 40 characters) in cluster order, and this node's
  // secret key. Empty: plain connections. With keys, every connection is encrypted, the
  // inbox admits only the listed keys (a ZAP handler), and a message counts as sent by the
  // node whose key its connection proved, whatever routing id the connection announced.
  std::vector<std::string> public_keys;
  std::string secret_key;
  // Every node's host in cluster order, for ring links (ring_links.h) that carry collective
  // chunks; empty: collectives go through ZeroMQ. Not with CURVE keys (links are plain TCP).
  // The fault-injection hooks above do not act on ring links.
  std::vector<std::string> ring_link_hosts;
  std::uint16_t ring_link_port = 0;  // where this node's ring link listens; 0: the kernel picks
  // Or every node's Unix-domain socket path for its ring link, in cluster order (a cluster of
  // ipc:// endpoints); at most one of ring_link_hosts and ring_link_socket_paths is set.
  std::vector<std::string> ring_link_socket_paths;
};

class ZmqTransport final : public Transport {
 public:
  // Binds the inbox and connects to every peer; throws TransportError naming the endpoint if
  // the bind fails (address in use, bad interface, no permission).
  explicit ZmqTransport(ZmqTransportOptions options);
  ~ZmqTransport() override;  // stops the network thread; pending sends linger at most `linger`

  std::size_t self() const override { return options_.self; }
  std::size_t size() const override { return options_.ids.size(); }
  void send(std::size_t peer, OutgoingMessage message) override;
  Mailbox& mailbox() override { return mailbox_; }
  PeerTable& peers() override { return peers_; }
  void set_progress(std::uint64_t next_round, std::uint64_t step) override;
  void set_paused(bool paused) override;
  // The ZMTP heartbeat timeout and one PING interval more (see zmq_transport.cc).
  std::chrono::milliseconds release_bound() const override;
  RingLinks* ring_links() override { return ring_links_.get(); }

  std::uint64_t dropped_by_fault_injection() const { return injected_drops_.load(); }

 private:
  struct Impl;

  ZmqTransportOptions options_;
  PeerTable peers_;
  Mailbox mailbox_;
  std::atomic<std::uint64_t> next_round_{0};
  std::atomic<std::uint64_t> step_{0};
  std::atomic<bool> paused_{false};
  std::atomic<std::uint64_t> injected_drops_{0};
  std::unique_ptr<RingLinks> ring_links_;  // before impl_: its acks announce the links' port
  std::unique_ptr<Impl> impl_;
};

}  // namespace starling::gossip
