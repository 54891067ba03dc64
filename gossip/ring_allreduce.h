#pragma once
// RingAllreduce: bandwidth-optimal allreduce over a ring of members (Patarasuk & Yuan 2009;
// Gibiansky 2017), on flat float buffers.
//
// The buffer is cut into N segments (N = members); in N-1 reduce-scatter steps each member
// passes a partial sum one segment to its right neighbour and adds what arrives from its left,
// after which it owns one fully reduced segment; N-1 all-gather steps then pass the reduced
// segments around. Each member sends 2(N-1)/N of the buffer. Segments travel in chunks, and a
// chunk is forwarded as soon as it is reduced, so the steps pipeline.
//
// Every collective has a tag, the same on every member and increasing; messages also carry a
// fingerprint of the membership, so members that disagree on the ring refuse each other's
// chunks instead of mixing wrong data. A collective is atomic for each member: `out` is only
// written as scratch, and the caller commits it only when run() succeeds. A member that gives
// up (timeout, its left neighbour silent, a membership mismatch) tells every other member
// (allreduce_abort), so nobody waits out the whole timeout for a ring that is already broken.
//
// Chunks travel over the transport's ring links when it has them (ring_links.h: plain TCP,
// written and read by the calling thread, received straight into their destination), else
// through send() and the mailbox. Aborts, liveness and everything else use the transport.
#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "gossip/transport.h"

namespace starling::gossip {

struct AllreduceOptions {
  std::chrono::milliseconds timeout{10000};  // for the whole collective
  std::size_t chunk_bytes = 0;               // 0: chosen from the buffer size
  bool mean = true;                          // divide the sum by the number of members
  // Asked whenever the collective waits for a chunk (and whenever the transport's mailbox is
  // woken): once it returns true the collective fails at once, as if aborted, and tells the
  // other members so. For a node that is asked to stop while it waits for slow members.
  std::function<bool()> stop{};
};

struct AllreduceResult {
  bool ok = false;
  std::string error;                  // why it failed, naming the member at fault if known
  std::uint64_t payload_bytes_sent = 0;
  std::chrono::nanoseconds elapsed{0};
};

class RingAllreduce {
 public:
  // How many collectives ahead of the next one a member's chunks are buffered.
  static constexpr std::uint64_t kWindow = 64;

  // Opens the mailbox for collectives [first_tag, first_tag + kWindow): build the
  // RingAllreduce before any member may start a collective, so early chunks are kept.
  RingAllreduce(Transport& transport, AllreduceOptions options, std::uint64_t first_tag = 0);
  const AllreduceOptions& options() const { return options_; }
  // Buffers collectives from `tag` on (e.g. after a restart), before run() does.
  void expect(std::uint64_t tag);
  // The same without a RingAllreduce at hand: members that start a collective early must find
  // the window open, or their chunks are refused.
  static void open_window(Transport& transport, std::uint64_t tag);
  // The window [tag, last_tag].
  static void open_window(Transport& transport, std::uint64_t tag, std::uint64_t last_tag);
  // Keeps the window open through `last_tag` whatever collective this node is at: a caller
  // that knows the tag of a collective every member runs (the final allreduce of a gossip
  // run) buffers its chunks however far behind it is, e.g. just restarted from a checkpoint
  // while the others already wait in it.
  void keep_open_through(std::uint64_t last_tag);

  // Reduces `in` over `members` (node indices in ring order, including this node) into `out`
  // (same length; may be the same buffer as `in`). `tag` must be the same on every member and
  // larger than any tag this node used before. `kind` tells collectives of different meaning
  // apart (gradients, parameters): members that disagree on it refuse each other like members
  // that disagree on the ring. Returns within about options.timeout.
  AllreduceResult run(std::uint64_t tag, const std::vector<std::size_t>& members,
                      std::span<const float> in, std::span<float> out, std::uint64_t kind = 0);

  // Tells every other node of the cluster that this node will not take part in collective
  // `tag`, so anyone waiting in it gives up at once.
  void abort(std::uint64_t tag);

  // Fingerprint of a membership list and kind, as carried in every chunk.
  static std::uint64_t membership_fingerprint(const std::vector<std::size_t>& members,
                                              std::uint64_t kind = 0);

 private:
  // Waits until this node's connection to `peer` is up again if it was lost; false (after
  // `fail`) when the collective is aborted, `peer` goes silent, a stop comes or the deadline.
  bool await_connection(std::uint64_t tag, std::size_t peer, Clock::time_point deadline,
                        const std::function<void(std::string)>& fail);
  std::string could_not_send(std::size_t peer, std::uint64_t tag) const;
  // Tells the other members that this node gave up on collective `tag`.
  void abort_members(std::uint64_t tag, const std::vector<std::size_t>& members);
  // run() over the transport's ring links.
  AllreduceResult run_on_links(RingLinks& links, std::uint64_t tag,
                               const std::vector<std::size_t>& members, std::span<const float> in,
                               std::span<float> out, std::uint64_t kind);

  Transport& transport_;
  AllreduceOptions options_;
  std::uint64_t keep_open_through_ = 0;
  // Ring links only: reduce-scatter partial sums still being sent (out cannot hold them: the
  // all-gather writes there while they may still be queued) and one received chunk.
  std::vector<float> partial_;
  std::vector<float> scratch_;
};

}  // namespace starling::gossip
