#pragma once
// RingLinks: plain TCP streams between ring neighbours that carry the chunks of a ring
// allreduce, beside the ZeroMQ transport.
//
// Why: through ZeroMQ a chunk hops three threads on each side (the collective's thread, the
// transport's network thread, ZeroMQ's I/O thread) and is copied once more on receipt. On a
// machine where wake-ups and syscalls are dear that costs most of a 1 MiB collective
// (bench/RESULTS-allreduce.md: the same ring over plain sockets ran 4x faster). Here the
// collective's own thread writes each chunk from the caller's buffer and reads it straight
// into its destination. Everything else (heartbeats, liveness, aborts, gossip) stays on
// ZeroMQ.
//
// Each node listens on one TCP port, on the host of its data endpoint, chosen by the kernel,
// and tells its peers the port in its heartbeat acks (PeerTable::ring_port). In a cluster of
// ipc:// endpoints the links are Unix-domain stream sockets instead, each node's at a path
// beside its endpoint's (topology::ring_link_socket_path); its acks then announce port 1,
// which says only that it listens. A node connects
// to its right neighbour when a collective first needs it and keeps the connection. The first
// frame of every connection is a ring_hello (sender, incarnation, fingerprint, and aux0 = the
// node it means to reach); the acceptor trusts nothing on the stream before that frame has
// passed decode_header. Then frames follow: a 64-byte wire header and payload_bytes of payload.
//
// Invariants: an outbound link is dropped when a collective gives up with frames still queued
// (one may be half written, and the rest point into the caller's buffers), and an inbound one
// when a header fails its checks; a frame half read when a collective gives up is finished
// (or skipped, by its tag) by the next one. So every byte a link reads is at a frame boundary
// or inside the frame its header announced. A new
// connection from a sender replaces the older one; a peer whose port or incarnation changed is
// connected to again.
//
// Not thread-safe: a collective holds mutex() for its whole run.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <poll.h>

#include "gossip/fault_injection.h"
#include "gossip/inbound.h"
#include "gossip/peer_table.h"
#include "gossip/wire.h"

namespace starling::gossip {

struct RingLinksOptions {
  std::size_t self = 0;
  // Each node's host (of its data endpoint: a name, an IPv4 address or an IPv6 one, bracketed
  // or not), in cluster order.
  std::vector<std::string> hosts;
  // Or each node's Unix-domain socket path, in cluster order ("@name": Linux's abstract
  // namespace). When set, the links are Unix-domain sockets, and hosts and listen_port are
  // unused. Exactly one of hosts and socket_paths is set.
  std::vector<std::string> socket_paths;
  std::uint64_t fingerprint = 0;
  std::uint64_t incarnation = 0;
  std::size_t max_payload_bytes = 0;  // the largest frame payload accepted (0: no limit)
  std::uint16_t listen_port = 0;      // 0: a port the kernel picks
  // Test hooks, on the gossip frames this node sends over links (what the transport's own do
  // to its ZeroMQ messages); allreduce chunks are not touched.
  FaultInjection faults;
};

// One direction of a connection: frames written without blocking, in order.
class OutboundLink {
 public:
  OutboundLink(int fd, std::uint16_t port, std::uint64_t incarnation);
  ~OutboundLink();
  OutboundLink(const OutboundLink&) = delete;
  OutboundLink& operator=(const OutboundLink&) = delete;

  int fd() const { return fd_; }
  std::uint16_t port() const { return port_; }
  std::uint64_t peer_incarnation() const { return incarnation_; }
  using Clock = std::chrono::steady_clock;
  // Queues a frame, to be written from `not_before` on (a test hook's delay; frames are
  // written in order, so one held back holds back those behind it). The payload must stay
  // valid until idle() (or the link is dropped).
  void queue(const Header& header, std::span<const std::byte> payload,
             Clock::time_point not_before = {});
  // Writes what the socket takes now. False once the connection failed; error() says why.
  bool flush();
  bool idle() const { return frames_.empty(); }
  std::size_t queued() const { return frames_.size(); }  // frames not yet wholly written
  std::size_t held() const;  // of those, frames a delay holds back
  // There is something to write now: what a poll for POLLOUT is for (polling for it while
  // the next frame is held back would return at once, every time).
  bool wants_write() const;
  bool connecting() const { return connecting_; }
  const std::string& error() const { return error_; }

 private:
  struct Frame {
    std::array<std::byte, kHeaderSize> head;
    std::span<const std::byte> payload;
    Clock::time_point not_before;
  };
  int fd_;
  std::uint16_t port_;
  std::uint64_t incarnation_;
  bool connecting_ = true;
  std::deque<Frame> frames_;
  std::size_t written_ = 0;  // bytes of frames_.front() written
  std::string error_;
};

// The other direction: frames read without blocking, header first, then the body into
// wherever the reader wants it.
class InboundLink {
 public:
  InboundLink(int fd, std::uint64_t incarnation);  // from the sender whose hello it passed
  ~InboundLink();
  InboundLink(const InboundLink&) = delete;
  InboundLink& operator=(const InboundLink&) = delete;

  enum class Read { more, ready, failed };
  int fd() const { return fd_; }
  std::uint64_t incarnation() const { return incarnation_; }
  // Reads toward the next header; `ready` once it is whole and passed decode_header (an
  // allreduce chunk or a gossip payload from this link's sender and incarnation, at most
  // max_payload bytes, a whole number of values).
  Read read_header(const DecodeContext& context, std::size_t max_payload);
  const Header& header() const { return header_; }
  bool holds_header() const { return header_ready_; }  // read_header was ready; body not yet read
  // Reads the announced payload into `into` (header().payload_bytes long); `ready` once whole.
  Read read_body(std::byte* into);
  // Reads the announced payload into a buffer of the link's own, made on the first call (a
  // gossip payload, which must outlive the link's next frame); `ready` once whole, then
  // take_body() hands the buffer over.
  Read read_owned_body();
  std::shared_ptr<std::byte[]> take_body() { return std::move(owned_body_); }
  // Reads and discards the announced payload.
  Read skip_body();
  void next_frame();  // after read_body/skip_body returned ready
  const std::string& error() const { return error_; }
  // The sender closed the connection between two frames (it dropped the link after a
  // collective it gave up on, and connects again for the next one).
  bool closed_between_frames() const { return closed_ && header_got_ == 0; }

 private:
  Read fill(std::byte* into, std::size_t want, std::size_t& got);
  int fd_;
  std::uint64_t incarnation_;
  std::array<std::byte, kHeaderSize> head_{};
  std::size_t header_got_ = 0;
  bool header_ready_ = false;
  Header header_{};
  std::size_t body_got_ = 0;
  std::vector<std::byte> discard_;
  std::shared_ptr<std::byte[]> owned_body_;
  std::string error_;
  bool closed_ = false;
};

class RingLinks {
 public:
  static constexpr std::size_t kMaxUnidentified = 16;       // connections awaiting a hello
  static constexpr std::chrono::seconds kHelloTimeout{5};   // then they are closed
  // Gossip frames a link may hold unwritten; more go nowhere (a receiver that stopped reading,
  // stalled or not yet declared dead, must not make the sender keep every snapshot).
  static constexpr std::size_t kMaxQueuedGossip = 4;

  // Binds the listener on hosts[self] (at listen_port), or at socket_paths[self] (replacing a
  // socket file a crashed process left there); throws std::runtime_error naming host and
  // port, or path, and reason. Gossip payloads received on links go through `inbound`, the receive
  // path of ZeroMQ messages (checks, sender policy, accounting, the mailbox).
  RingLinks(RingLinksOptions options, PeerTable& peers, InboundPipeline& inbound);
  ~RingLinks();

  // The TCP port that the listener is bound to; 1 for a Unix-domain socket's.
  std::uint16_t port() const { return port_; }
  bool unix_sockets() const { return !options_.socket_paths.empty(); }
  // This node's socket path, if unix_sockets(); else empty.
  std::string socket_path() const {
    return unix_sockets() ? options_.socket_paths.at(options_.self) : std::string();
  }
  // Where the listener is: "port N" or "socket PATH", for logs.
  std::string where() const;
  // Whether gossip payloads take these links; else only allreduce chunks do, and gossip goes
  // through ZeroMQ. Not over Unix-domain sockets: their send buffers hold about 200 KB, less
  // than an mlp's binary16 payload, and the training thread writes the rest only at later step
  // boundaries, so rounds arrived later (applied 5.0 steps after the snapshot against 3.1
  // through ZeroMQ, 46% a whole period late against 24%) and the models ended 0.2 points
  // lower (bench/RESULTS-allreduce.md, "Ring links over Unix-domain sockets"). A collective's
  // thread writes and reads without pause, where the same sockets beat ZeroMQ.
  bool carries_gossip() const { return !unix_sockets(); }
  std::uint64_t incarnation() const { return options_.incarnation; }
  std::uint64_t fingerprint() const { return options_.fingerprint; }
  std::size_t max_payload_bytes() const { return options_.max_payload_bytes; }
  DecodeContext context_for(std::size_t sender) const;
  std::mutex& mutex() { return mutex_; }

  // Accepts waiting connections and reads their hellos; a valid hello makes the connection
  // the inbound link of its sender. Refused hellos are counted in the peer table and logged
  // once per peer and reason.
  void service_listener();
  // The listener to poll; -1 (which poll ignores) for a second after accept failed for want
  // of descriptors or memory, when the waiting connection would wake every poll at once.
  int listener_fd() const;
  std::vector<int> unidentified_fds() const;  // to poll for their hellos

  InboundLink* inbound(std::size_t peer);
  // The link to `peer`, connecting (again) if there is none or the peer's ring port or
  // incarnation changed since. nullptr while the port is unknown, or when a connect failed
  // at once (then `why` says so).
  OutboundLink* outbound(std::size_t peer, std::string* why);
  void drop_inbound(std::size_t peer);
  void drop_outbound(std::size_t peer);

  // Gossip payloads over links (README "Ring links"): the training thread writes a round's
  // snapshot to each out-neighbour's link and reads its in-neighbours' links between steps,
  // with no other thread in between.
  //
  // Queues a gossip frame to `peer` and writes what the socket takes; `owner` keeps the
  // payload alive until the link has written it. False when there is no link to queue on
  // (the peer's port is not known yet): the caller sends through ZeroMQ instead. A link that
  // already holds kMaxQueuedGossip frames takes no more: the frame is dropped and counted as
  // a send failure (true: it is not to go through ZeroMQ either).
  //
  // Test hooks (options.faults): a frame may vanish instead (dropped_by_fault_injection
  // counts it; true), or wait on the link for the delay before it is written.
  bool send_gossip(std::size_t peer, const Header& header, std::span<const std::byte> payload,
                   std::shared_ptr<const void> owner);
  std::uint64_t dropped_by_fault_injection() const { return injected_drops_; }
  // Writes what the sockets take of every link's queued frames; drops links that failed.
  void flush_gossip();
  // Reads what has arrived from `peer`: each whole gossip frame is checked (checksum, NaN/Inf,
  // that the peer may send gossip) and filed in the mailbox, or refused and counted. Stops at
  // an allreduce chunk, which stays for the collective it belongs to.
  void receive_gossip_from(std::size_t peer);
  // The latest round of a gossip frame that came over the link from `peer` (valid, filed or
  // late), or nullopt before the first. Frames on a link arrive in the order they were sent.
  std::optional<std::uint64_t> latest_gossip_round(std::size_t peer) const;
  // Whether there is an inbound link from `peer`.
  bool has_inbound(std::size_t peer) const { return inbound_.count(peer) > 0; }
  // What the training thread does between steps: receive_gossip_from every peer that may
  // send gossip (messages of later rounds wait in the mailbox, as those that come through
  // ZeroMQ do, and do not fill the sender's socket) and service_listener, each only where one
  // poll(2) without waiting says there is input; and flush_gossip while a link has frames
  // left. Most steps there is nothing to do, and each of those calls was a syscall that found
  // nothing (an accept4 and a recv per link, every step), dear on a paravirtualised machine.
  // `wait` > 0: a round that waits for payloads; the poll sleeps up to `wait` for input, for
  // room on a link with frames to write, or for a connection.
  void progress_gossip(std::chrono::milliseconds wait = std::chrono::milliseconds(0));
  // The frame whose header `link` (from `peer`) holds is a gossip payload: reads, checks and
  // files it. `more`: the body is not all here yet.
  InboundLink::Read take_gossip_frame(std::size_t peer, InboundLink& link);

 private:
  struct Unidentified {
    int fd;
    std::chrono::steady_clock::time_point since;
    std::array<std::byte, kHeaderSize> head{};
    std::size_t got = 0;
  };
  void refuse(const Unidentified& pending, std::optional<std::size_t> sender, RejectReason reason,
              const std::string& detail);

  std::size_t nodes() const {
    return unix_sockets() ? options_.socket_paths.size() : options_.hosts.size();
  }
  void listen_on_path(const std::string& path);  // the constructor's part for Unix sockets

  RingLinksOptions options_;
  PeerTable& peers_;
  int listener_ = -1;
  std::uint16_t port_ = 0;
  // The socket file this process bound (device and inode), removed again only if it is still
  // that file: a later process of the same node may have replaced it.
  std::optional<std::pair<std::uint64_t, std::uint64_t>> bound_file_;
  std::chrono::steady_clock::time_point accept_paused_until_{};
  std::mutex mutex_;
  std::vector<Unidentified> unidentified_;
  std::map<std::size_t, std::unique_ptr<InboundLink>> inbound_;
  std::map<std::size_t, std::unique_ptr<OutboundLink>> outbound_;
  InboundPipeline& inbound_pipeline_;
  // Owners of gossip payloads queued on each outbound link; released once it is idle.
  std::map<std::size_t, std::vector<std::shared_ptr<const void>>> gossip_owners_;
  std::map<std::size_t, std::uint64_t> latest_gossip_round_;
  std::mt19937_64 fault_rng_;
  std::uint64_t injected_drops_ = 0;
  // progress_gossip's descriptors and what each is: an inbound link's peer, an outbound link,
  // or the listener or a connection awaiting its hello (kept between calls so as not to
  // allocate at every step).
  static constexpr std::size_t kOutbound = static_cast<std::size_t>(-1);
  static constexpr std::size_t kListener = static_cast<std::size_t>(-2);
  std::vector<struct pollfd> progress_fds_;
  std::vector<std::size_t> progress_for_;
};

}  // namespace starling::gossip
