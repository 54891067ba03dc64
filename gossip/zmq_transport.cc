#include "gossip/zmq_transport.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cassert>
#include <cerrno>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <unordered_map>
#include <zmq.hpp>

#include "gossip/ipv6.h"
#include "gossip/socket_monitor.h"
#include "gossip/zmq_poll_set.h"
#include "gossip/zap_handler.h"

namespace starling::gossip {
namespace {

constexpr int kMaxMessagesPerWake = 1024;  // bounds one poll iteration's work per socket
constexpr std::chrono::milliseconds kStartupHeartbeat{10};  // see run()
constexpr std::chrono::seconds kStartupPhase{30};  // quick heartbeats at most this long
constexpr std::chrono::seconds kReconnectSpacing{1};  // see connect_again_if_waiting()
// Routing id + header + payload + one more, so a message with extra frames is still seen to
// have them; frames beyond that are read and discarded.
constexpr std::size_t kMaxKeptFrames = 4;
constexpr std::size_t kMaxCurveCommand = 512;  // CURVE handshake commands are at most ~200 bytes

void release_payload(void* /*data*/, void* hint) {
  delete static_cast<std::shared_ptr<const void>*>(hint);
}

struct Pending {
  std::size_t peer;
  OutgoingMessage message;
};

// A connection silent this long is closed by ZMTP heartbeats (see configure_common).
std::chrono::milliseconds zmtp_timeout(const ZmqTransportOptions& o) {
  return std::max(o.heartbeat * 5, std::chrono::milliseconds(2 * o.timing.dead_after.count()));
}

// How often ZMTP PINGs a connection: a quarter of the timeout, and never more often than the
// node's own heartbeats. Any traffic from the peer stops a PING's timeout, and the node's
// heartbeats and their acks cross every connection each `heartbeat`, so PINGs only matter
// once the peer has gone silent; a silent connection is then closed within interval + timeout.
// (A PING every heartbeat, as before, woke ZeroMQ's I/O thread 60 times a second per node on a
// 4-node cluster, most of its wake-ups, for nothing the heartbeats did not already show.)
std::chrono::milliseconds zmtp_ping_interval(const ZmqTransportOptions& o) {
  return std::max(o.heartbeat, zmtp_timeout(o) / 4);
}

}  // namespace

struct ZmqTransport::Impl {
  ZmqTransport& owner;
  zmq::context_t context{1};
  zmq::socket_t router{context, zmq::socket_type::router};
  zmq::socket_t monitor;  // the inbox's socket monitor (made in open_sockets)
  std::unique_ptr<ZapHandler> zap;  // CURVE only
  std::vector<std::unique_ptr<zmq::socket_t>> dealers;  // nullptr at self
  // Per dealer, the PAIR end of its socket monitor: a connection that closes means the peer's
  // process is gone (a crash closes its sockets), which silence would only show later.
  std::vector<std::unique_ptr<zmq::socket_t>> dealer_monitors;  // nullptr at self
  std::vector<bool> dealer_unconnected;  // our last heartbeat to this peer could not be sent
  // connect_again_if_waiting, per peer: when it last ran (the epoch: never).
  std::vector<Clock::time_point> last_reconnect;
  std::unordered_map<std::string, std::size_t> index_of_id;
  InboundPipeline pipeline;
  int wake_fd = -1;

  std::mutex queue_mutex;
  std::deque<Pending> queue;  // guarded by queue_mutex
  std::atomic<bool> stopping{false};

  // Network-thread-only state.
  // What run() waits on; made there. The handles of the dealers and their monitors are per
  // peer (unused at self).
  ZmqPollSet poll_set;
  enum class Source { inbox, inbox_monitor, wake, zap, dealer, dealer_monitor };
  struct Watched {
    Source source;
    std::size_t peer = 0;  // dealer and dealer_monitor only
  };
  std::vector<Watched> watched;  // by poll_set handle
  ZmqPollSet::Handle router_item = 0, monitor_item = 0;
  std::vector<ZmqPollSet::Handle> dealer_item, dealer_monitor_item;  // by peer; unused at self
  std::mt19937_64 fault_rng;
  std::multimap<Clock::time_point, Pending> delayed;
  std::thread thread;

  explicit Impl(ZmqTransport& transport)
      : owner(transport),
        pipeline(transport.options_.self, transport.options_.policy, transport.peers_,
                 transport.mailbox_),
        fault_rng(transport.options_.faults.seed) {}

  const ZmqTransportOptions& options() const { return owner.options_; }

  void configure_common(zmq::socket_t& socket) {
    // ZMTP heartbeats: a connection whose peer stops answering PINGs is closed, so a stalled
    // or vanished host does not keep a half-open TCP connection (and its queue) forever.
    // Not sooner than twice dead_after: closing a connection drops what is queued on it, and
    // over a slow link the peer's answers arrive behind a model each way (a timeout of
    // dead_after alone closed such connections under load, and the rounds then ran apart).
    // What is queued on a connection to a vanished peer is freed when it closes: the ring
    // allreduce waits for that (release_bound()).
    const int ivl = static_cast<int>(zmtp_ping_interval(options()).count());
    const int timeout = zmtp_timeout(options()).count();
    socket.set(zmq::sockopt::heartbeat_ivl, ivl);
    socket.set(zmq::sockopt::heartbeat_timeout, timeout);
    socket.set(zmq::sockopt::heartbeat_ttl, timeout * 2);
  }

  bool curve() const { return !options().public_keys.empty(); }

  void configure_curve() {
    const auto& o = options();
    if (o.public_keys.size() != o.ids.size() || o.secret_key.size() != 40) {
      throw TransportError("CURVE needs a public key for every node and this node's secret key");
    }
    // Every other node's key is admitted, as that node (the User-Id its messages carry).
    std::map<std::string, std::string> admitted;
    for (std::size_t i = 0; i < o.public_keys.size(); ++i) {
      try {
        if (i != o.self) admitted.emplace(ZapHandler::binary_key(o.public_keys[i]), o.ids[i]);
      } catch (const std::invalid_argument&) {
        throw TransportError("node " + o.ids[i] + "'s public key is not Z85");
      }
    }
    // The ZAP handler must be bound before the inbox accepts a connection: libzmq asks it
    // about every CURVE handshake (without one, a CURVE server admits any key).
    zap = std::make_unique<ZapHandler>(context, std::move(admitted),
                                       "the inbox of " + o.ids[o.self],
                                       "is not another node's key in the cluster file");
    router.set(zmq::sockopt::curve_server, 1);
    router.set(zmq::sockopt::curve_secretkey, o.secret_key);
    router.set(zmq::sockopt::zap_domain, "starling");
  }

  void open_sockets() {
    const auto& o = options();
    for (std::size_t i = 0; i < o.ids.size(); ++i) index_of_id.emplace(o.ids[i], i);

    if (curve()) configure_curve();
    configure_common(router);
    router.set(zmq::sockopt::router_mandatory, 1);
    // A restarted node reconnects with the same id while its old connection may still be
    // half-open; handover lets the new connection take the id over.
    router.set(zmq::sockopt::router_handover, 1);
    // The limit applies to frames as they arrive, and CURVE boxes each one with a few dozen
    // bytes of its own (command name, nonce, MAC).
    router.set(zmq::sockopt::maxmsgsize,
               static_cast<std::int64_t>(std::max(o.max_payload_bytes, kHeaderSize) +
                                         (curve() ? kMaxCurveCommand : 0)));
    router.set(zmq::sockopt::rcvhwm, 10000);
    router.set(zmq::sockopt::linger, 0);
    try {
      monitor = monitor_socket(context, router, "inproc://starling-inbox-monitor",
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                   ZMQ_EVENT_HANDSHAKE_FAILED_AUTH);
    } catch (const zmq::error_t& e) {
      throw TransportError(std::string("cannot monitor the inbox: ") + e.what());
    }
    try {
      enable_ipv6_for(router, o.endpoints[o.self]);
      router.bind(o.endpoints[o.self]);
    } catch (const zmq::error_t& e) {
      // The usual causes, said in the operator's terms: a node run on a machine that is not
      // the one its endpoint names, or a port another process holds.
      std::string hint;
      if (e.num() == EADDRNOTAVAIL) {
        hint = " (no network interface of this machine has that address: is this the machine "
               "the cluster file puts node " + o.ids[o.self] + " on?)";
      } else if (e.num() == EADDRINUSE) {
        hint = " (another process listens on that port: another node, or an older starlingd)";
      }
      throw TransportError("node " + o.ids[o.self] + " cannot bind its data endpoint " +
                           o.endpoints[o.self] + ": " + e.what() + hint);
    }

    dealers.resize(o.ids.size());
    dealer_monitors.resize(o.ids.size());
    dealer_unconnected.assign(o.ids.size(), false);
    last_reconnect.assign(o.ids.size(), Clock::time_point{});
    for (std::size_t i = 0; i < o.ids.size(); ++i) {
      if (i == o.self) continue;
      auto dealer = std::make_unique<zmq::socket_t>(context, zmq::socket_type::dealer);
      configure_common(*dealer);
      dealer->set(zmq::sockopt::routing_id, o.ids[o.self]);
      dealer->set(zmq::sockopt::immediate, 1);
      dealer->set(zmq::sockopt::reconnect_ivl, 100);
      dealer->set(zmq::sockopt::reconnect_ivl_max, 2000);
      dealer->set(zmq::sockopt::sndhwm, 1000);
      dealer->set(zmq::sockopt::linger, static_cast<int>(o.linger.count()));
      // Only heartbeat acks come back on a dealer; the limit also applies to handshake
      // commands, and CURVE's (WELCOME: 168 bytes) are larger than a header.
      dealer->set(zmq::sockopt::maxmsgsize,
                  static_cast<std::int64_t>(curve() ? kMaxCurveCommand : kHeaderSize));
      if (curve()) {
        // The peer's inbox must prove it holds the secret key of the public key listed for it.
        dealer->set(zmq::sockopt::curve_serverkey, o.public_keys[i]);
        dealer->set(zmq::sockopt::curve_publickey, o.public_keys[o.self]);
        dealer->set(zmq::sockopt::curve_secretkey, o.secret_key);
      }
      // Before connect, so that no event of the first connection is missed.
      try {
        dealer_monitors[i] = std::make_unique<zmq::socket_t>(monitor_socket(
            context, *dealer, "inproc://starling-dealer-monitor-" + std::to_string(i),
            ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED));
      } catch (const zmq::error_t& e) {
        throw TransportError("cannot monitor the connection to " + o.ids[i] + ": " + e.what());
      }
      try {
        enable_ipv6_for(*dealer, o.endpoints[i]);
        dealer->connect(o.endpoints[i]);
      } catch (const zmq::error_t& e) {
        throw TransportError("cannot connect to peer " + o.ids[i] + " at " + o.endpoints[i] + ": " +
                             e.what());
      }
      dealers[i] = std::move(dealer);
    }

    wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd < 0) throw TransportError("eventfd failed");
  }

  std::atomic<bool> beat_now{false};  // send heartbeats now (news such as a pause)

  void wake() {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd, &one, sizeof one);
  }

  void transmit(std::size_t peer, const OutgoingMessage& m) {
    const auto& o = options();
    Header h;
    h.type = m.type;
    h.sender = static_cast<std::uint32_t>(o.self);
    h.incarnation = o.incarnation;
    h.tag = m.tag;
    h.fingerprint = o.policy.fingerprint;
    h.aux0 = m.aux0;
    h.aux1 = m.aux1;
    const bool has_payload = carries_payload(m.type);
    if (has_payload) {
      h.payload_bytes = m.payload.bytes.size();
      h.payload_crc = m.payload.crc;
    }
    auto head = encode_header(h);
    zmq::message_t head_message(head.data(), head.size());
    zmq::socket_t& dealer = *dealers[peer];
    poll_set.touch(dealer_item[peer]);  // a send may take in the signal of an arriving ack
    auto flags = zmq::send_flags::dontwait | (has_payload ? zmq::send_flags::sndmore
                                                          : zmq::send_flags::none);
    if (!dealer.send(head_message, flags)) {
      // Not connected (IMMEDIATE) or over the high-water mark: the receiver's timeout handles it.
      if (m.type != MessageType::heartbeat) {
        owner.peers_.on_send_failure(peer);
        owner.mailbox_.wake_all();  // a collective that sent this chunk stops waiting
      }
      if (m.type == MessageType::heartbeat) dealer_unconnected[peer] = true;
      return;
    }
    if (m.type == MessageType::heartbeat) dealer_unconnected[peer] = false;
    if (has_payload) {
      zmq::message_t body;
      if (!m.payload.bytes.empty()) {
        auto* keep = new std::shared_ptr<const void>(m.payload.owner);
        body = zmq::message_t(const_cast<std::byte*>(m.payload.bytes.data()),
                              m.payload.bytes.size(), release_payload, keep);
      }
      // Once the first frame is accepted ZeroMQ accepts the rest of the message.
      dealer.send(body, zmq::send_flags::dontwait);
    }
    owner.peers_.on_sent(peer, kHeaderSize + h.payload_bytes);
  }

  // Test hook: should this outgoing message vanish?
  bool injected_drop() {
    if (!options().faults.loses_next(fault_rng)) return false;
    ++owner.injected_drops_;
    return true;
  }

  void dispatch(Pending pending, Clock::time_point now) {
    const auto& faults = options().faults;
    if (injected_drop()) return;
    if (faults.delay.count() > 0) {
      delayed.emplace(now + faults.delay, std::move(pending));
      return;
    }
    transmit(pending.peer, pending.message);
  }

  void flush_queue(Clock::time_point now) {
    std::deque<Pending> batch;
    {
      std::lock_guard lock(queue_mutex);
      batch.swap(queue);
    }
    for (auto& pending : batch) dispatch(std::move(pending), now);
  }

  void release_delayed(Clock::time_point now) {
    while (!delayed.empty() && delayed.begin()->first <= now) {
      Pending pending = std::move(delayed.begin()->second);
      delayed.erase(delayed.begin());
      transmit(pending.peer, pending.message);
    }
  }

  void send_ack(const zmq::message_t& identity, std::uint64_t echo) {
    if (injected_drop()) return;
    const auto& o = options();
    Header h;
    h.type = MessageType::heartbeat_ack;
    h.sender = static_cast<std::uint32_t>(o.self);
    h.incarnation = o.incarnation;
    h.fingerprint = o.policy.fingerprint;
    h.aux0 = echo;
    h.aux1 = owner.ring_links_ ? owner.ring_links_->port() : 0;
    auto head = encode_header(h);
    poll_set.touch(router_item);
    try {
      zmq::message_t id_copy(identity.data(), identity.size());
      zmq::message_t head_message(head.data(), head.size());
      if (router.send(id_copy, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
        router.send(head_message, zmq::send_flags::dontwait);
      }
    } catch (const zmq::error_t& e) {
      // EHOSTUNREACH (ROUTER_MANDATORY): the peer disconnected since its heartbeat.
      spdlog::debug("heartbeat ack not sent: {}", e.what());
    }
  }

  // Reads one whole multipart message; keeps at most kMaxKeptFrames frames but counts all.
  bool read_message(zmq::socket_t& socket, std::vector<zmq::message_t>& frames) {
    frames.clear();
    zmq::message_t frame;
    if (!socket.recv(frame, zmq::recv_flags::dontwait)) return false;
    while (true) {
      bool more = frame.more();
      if (frames.size() < kMaxKeptFrames) frames.push_back(std::move(frame));
      if (!more) return true;
      frame = zmq::message_t();
      // The remaining frames of a multipart message are already here (atomic delivery).
      if (!socket.recv(frame, zmq::recv_flags::none)) return true;
    }
  }

  void handle_frames(std::optional<std::size_t> sender,
                     std::shared_ptr<std::vector<zmq::message_t>> frames, std::size_t first,
                     const zmq::message_t* reply_identity) {
    std::vector<std::span<const std::byte>> views;
    for (std::size_t i = first; i < frames->size(); ++i) {
      views.emplace_back(static_cast<const std::byte*>((*frames)[i].data()), (*frames)[i].size());
    }
    InboundAction action = pipeline.handle(sender, views, frames);
    if (action.send_heartbeat_ack && reply_identity) {
      send_ack(*reply_identity, action.echo);
      if (sender) connect_again_if_waiting(*sender, Clock::now());
    }
  }

  // A peer we hear from (a valid heartbeat) but could not send our last heartbeat to, and
  // that has never answered one: our DEALER is waiting out ZeroMQ's reconnect backoff, which
  // doubles up to reconnect_ivl_max while the peer is down, so a node that started early
  // would only reach a late one up to two seconds after it came up, and would start training
  // that much later than the others. Connecting again now skips the rest of the wait.
  // The same for a peer that comes back (restarted) after our connection to it closed: it is
  // alive for us as soon as its beats arrive, and a collective that counts it in waits for our
  // connection to it (RingAllreduce::run) — for up to two seconds of backoff, had we not
  // connected again. Only before the first round trip or after the connection closed
  // (otherwise a failed send means a full queue, which a new connection would throw away),
  // and at most once per kReconnectSpacing: a reconnect
  // restarts a handshake that may be under way, and on a loaded machine handshakes take a
  // while; restarting them every few tens of milliseconds kept peers from ever connecting.
  void connect_again_if_waiting(std::size_t peer, Clock::time_point now) {
    if (peer >= dealers.size() || !dealers[peer] || !dealer_unconnected[peer]) return;
    if (owner.peers_.has_round_trip(peer) && !owner.peers_.connection_lost(peer)) return;
    const bool ever = last_reconnect[peer] != Clock::time_point{};
    if (ever && now - last_reconnect[peer] < kReconnectSpacing) return;
    last_reconnect[peer] = now;
    poll_set.touch(dealer_item[peer]);
    const std::string& endpoint = options().endpoints[peer];
    try {
      dealers[peer]->disconnect(endpoint);
      dealers[peer]->connect(endpoint);
    } catch (const zmq::error_t& e) {
      spdlog::debug("connecting again to {} failed: {}", endpoint, e.what());
    }
    beat_now = true;
  }

  void receive_inbox() {
    for (int n = 0; n < kMaxMessagesPerWake; ++n) {
      auto frames = std::make_shared<std::vector<zmq::message_t>>();
      if (!read_message(router, *frames)) return poll_set.drained(router_item);
      // Frame 0 is the routing id the peer's DEALER announced: its node id. With CURVE the
      // sender is the node whose key the connection proved (the ZAP User-Id), so a node
      // cannot speak for another by announcing its id: the header's sender then disagrees.
      const zmq::message_t& identity = (*frames)[0];
      // Metadata rides on the frames that came over the connection, not on the routing-id
      // frame the ROUTER adds.
      const char* user = curve() && frames->size() > 1
                             ? zmq_msg_gets((*frames)[1].handle(), "User-Id")
                             : nullptr;
      const std::string claimed =
          curve() ? std::string(user ? user : "")
                  : std::string(static_cast<const char*>(identity.data()), identity.size());
      std::optional<std::size_t> sender;
      auto it = index_of_id.find(claimed);
      if (it != index_of_id.end()) sender = it->second;
      handle_frames(sender, frames, 1, &identity);
    }
  }

  void receive_dealer(std::size_t peer) {
    for (int n = 0; n < kMaxMessagesPerWake; ++n) {
      auto frames = std::make_shared<std::vector<zmq::message_t>>();
      if (!read_message(*dealers[peer], *frames)) return poll_set.drained(dealer_item[peer]);
      handle_frames(peer, frames, 0, nullptr);
    }
  }

  void receive_monitor() {
    for (int n = 0; n < kMaxMessagesPerWake; ++n) {
      auto id = next_monitor_event(monitor);
      if (!id) return poll_set.drained(monitor_item);
      if (*id & (ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                 ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)) {
        owner.peers_.on_handshake_failure();
        if (owner.peers_.handshake_failures() == 1) {
          spdlog::warn("a connection to {} failed the ZeroMQ handshake (not a Starling peer?); "
                       "further failures are only counted",
                       options().endpoints[options().self]);
        }
      }
    }
  }

  void receive_dealer_monitor(std::size_t peer) {
    for (int n = 0; n < kMaxMessagesPerWake; ++n) {
      auto id = next_monitor_event(*dealer_monitors[peer]);
      if (!id) return poll_set.drained(dealer_monitor_item[peer]);
      if (*id & ZMQ_EVENT_DISCONNECTED) {
        owner.peers_.on_connection(peer, false);
        owner.mailbox_.wake_all();  // a round waiting for this peer stops waiting
      } else if (*id & ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
        owner.peers_.on_connection(peer, true);
        owner.mailbox_.wake_all();  // a collective waiting to send to this peer may go on
      }
    }
  }

  void heartbeat_tick(Clock::time_point now) {
    OutgoingMessage beat;
    beat.type = MessageType::heartbeat;
    beat.tag = owner.next_round_.load();
    beat.aux1 = (owner.step_.load() & ~kHeartbeatPausedBit) |
                (owner.paused_.load() ? kHeartbeatPausedBit : 0);
    for (std::size_t i = 0; i < dealers.size(); ++i) {
      if (!dealers[i]) continue;
      beat.aux0 = monotonic_ns();
      dispatch(Pending{i, beat}, now);  // through the fault hooks like everything else
    }
    auto transitions = owner.peers_.update(now);
    for (const auto& t : transitions) {
      const std::string& id = owner.peers_.id(t.peer);
      if (t.to == PeerState::dead) {
        spdlog::warn("peer {} is dead (silent for {} ms); its mixing weight goes to this node",
                     id, owner.peers_.dead_after(t.peer).count());
      } else if (t.to == PeerState::suspect) {
        spdlog::info("peer {} is suspect (silent for {} ms)", id,
                     owner.peers_.suspect_after(t.peer).count());
      } else if (t.to == PeerState::alive && t.from == PeerState::dead) {
        spdlog::info("peer {} is back", id);
      } else if (t.to == PeerState::alive && t.from == PeerState::connecting) {
        spdlog::info("peer {} is alive", id);
      }
    }
    if (!transitions.empty()) owner.mailbox_.wake_all();
  }

  // Records what a new member of poll_set is; returns its handle. Handles count up from 0 in
  // the order members are added, so `watched` is indexed by them.
  ZmqPollSet::Handle watch(ZmqPollSet::Handle item, Source source, std::size_t peer = 0) {
    assert(item == watched.size());
    watched.push_back(Watched{source, peer});
    return item;
  }

  void watch_sockets() {
    router_item = watch(poll_set.add(router), Source::inbox);
    monitor_item = watch(poll_set.add(monitor), Source::inbox_monitor);
    watch(poll_set.add_fd(wake_fd), Source::wake);
    if (curve()) watch(poll_set.add(zap->socket()), Source::zap);
    dealer_item.assign(dealers.size(), 0);
    dealer_monitor_item.assign(dealers.size(), 0);
    for (std::size_t i = 0; i < dealers.size(); ++i) {
      if (!dealers[i]) continue;
      dealer_item[i] = watch(poll_set.add(*dealers[i]), Source::dealer, i);
      dealer_monitor_item[i] = watch(poll_set.add(*dealer_monitors[i]), Source::dealer_monitor, i);
    }
  }

  void serve(const Watched& what) {
    switch (what.source) {
      case Source::inbox: return receive_inbox();
      case Source::inbox_monitor: return receive_monitor();
      case Source::zap: return zap->serve();
      case Source::dealer: return receive_dealer(what.peer);
      case Source::dealer_monitor: return receive_dealer_monitor(what.peer);
      case Source::wake: return;  // see run()
    }
  }

  void run() {
    watch_sockets();
    auto next_tick = Clock::now();
    const auto quick_beats_until = next_tick + kStartupPhase;
    while (!stopping.load()) {
      auto now = Clock::now();
      if (now >= next_tick || beat_now.exchange(false)) {
        heartbeat_tick(now);
        // Until every live peer has answered a heartbeat, beat every kStartupHeartbeat: a
        // node is ready to train once it has a round trip to each neighbour, and the first
        // beats go nowhere (IMMEDIATE: not sent before the connection is up). At the normal
        // period that made nodes of one cluster start training up to a period apart, and the
        // first to start waited that long for its first round. Only in the start-up phase: a
        // peer that stays alive without ever answering must not keep them quick.
        next_tick = now + (now < quick_beats_until && owner.peers_.awaiting_round_trips()
                               ? std::min<Clock::duration>(options().heartbeat, kStartupHeartbeat)
                               : Clock::duration(options().heartbeat));
      }
      release_delayed(now);
      auto wake_at = next_tick;
      if (!delayed.empty()) wake_at = std::min(wake_at, delayed.begin()->first);
      auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(wake_at - now);
      const auto& ready = poll_set.wait(std::max(timeout, std::chrono::milliseconds(0)));
      for (auto item : ready) {
        // Before the queue is taken: a message queued after this read wakes the next wait.
        if (watched[item].source != Source::wake) continue;
        std::uint64_t value;
        [[maybe_unused]] auto n = ::read(wake_fd, &value, sizeof value);
      }
      // What the application queued goes out before what arrived is read: a collective that
      // just queued a chunk waits on it.
      flush_queue(Clock::now());
      for (auto item : ready) serve(watched[item]);
    }
    // Give queued messages (e.g. a last model to neighbours) to ZeroMQ; linger sends them.
    flush_queue(Clock::now());
    for (auto& [due, pending] : delayed) transmit(pending.peer, pending.message);
    delayed.clear();
  }
};

ZmqTransport::ZmqTransport(ZmqTransportOptions options)
    : options_(std::move(options)),
      peers_(options_.ids, options_.self, options_.timing),
      mailbox_(options_.ids.size(), options_.mailbox_per_sender_limit) {
  if (options_.ids.size() != options_.endpoints.size() || options_.self >= options_.ids.size()) {
    throw std::invalid_argument("ZmqTransport: ids, endpoints and self disagree");
  }
  impl_ = std::make_unique<Impl>(*this);
  impl_->open_sockets();
  // After the inbox: a data endpoint that cannot be bound is reported as such, not as a ring
  // link's failure. Before the network thread: its acks announce the links' port.
  if (!options_.ring_link_hosts.empty() || !options_.ring_link_socket_paths.empty()) {
    if (!options_.public_keys.empty()) {
      throw std::invalid_argument("ZmqTransport: ring links are not encrypted; not with CURVE keys");
    }
    if (!options_.ring_link_hosts.empty() && !options_.ring_link_socket_paths.empty()) {
      throw std::invalid_argument("ZmqTransport: ring links over TCP or Unix sockets, not both");
    }
    RingLinksOptions links;
    links.self = options_.self;
    links.hosts = options_.ring_link_hosts;
    links.socket_paths = options_.ring_link_socket_paths;
    links.fingerprint = options_.policy.fingerprint;
    links.incarnation = options_.incarnation;
    links.max_payload_bytes = options_.max_payload_bytes;
    links.listen_port = options_.ring_link_port;
    links.faults = options_.faults;
    try {
      ring_links_ = std::make_unique<RingLinks>(std::move(links), peers_, impl_->pipeline);
    } catch (const std::runtime_error& e) {
      throw TransportError(options_.ids[options_.self] + ": " + e.what());
    }
  }
  impl_->thread = std::thread([this] {
    try {
      impl_->run();
    } catch (const std::exception& e) {
      // A broken invariant in the network thread: fail loudly rather than run deaf.
      spdlog::critical("network thread failed: {}", e.what());
      std::terminate();
    }
  });
}

ZmqTransport::~ZmqTransport() {
  mailbox_.close();
  impl_->stopping.store(true);
  impl_->wake();
  if (impl_->thread.joinable()) impl_->thread.join();
  // Sockets close with the Impl (after the thread ended: join orders all its accesses); the
  // context then waits at most `linger` for unsent messages.
  ::close(impl_->wake_fd);
}

void ZmqTransport::send(std::size_t peer, OutgoingMessage message) {
  if (peer >= size() || peer == self()) {
    throw std::invalid_argument("ZmqTransport::send: bad peer index " + std::to_string(peer));
  }
  {
    std::lock_guard lock(impl_->queue_mutex);
    impl_->queue.push_back(Pending{peer, std::move(message)});
  }
  impl_->wake();
}

std::chrono::milliseconds ZmqTransport::release_bound() const {
  return zmtp_timeout(options_) + zmtp_ping_interval(options_);
}

void ZmqTransport::set_progress(std::uint64_t next_round, std::uint64_t step) {
  next_round_.store(next_round);
  step_.store(step);
}

void ZmqTransport::set_paused(bool paused) {
  if (paused_.exchange(paused) != paused) {  // tell the peers at once, not at the next beat
    impl_->beat_now.store(true);
    impl_->wake();
  }
}

}  // namespace starling::gossip
