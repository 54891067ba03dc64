#pragma once
// DynamicAverager: drift-threshold ("dynamic") averaging after Kamp et al. 2018, peer to peer,
// with no coordinator. One per node; the training thread publishes its model every b steps
// with check(), and a protocol thread of the averager does the rest.
//
// The reference r is the model of the last full synchronization; every node keeps its own copy,
// identical everywhere because only a full synchronization changes it, on every live node at
// once. check() tests the local condition ||x - r||^2 <= delta. A violation makes this node the
// driver of a balancing: it locks a set S (itself and its neighbours in the cluster's graph),
// gathers their models, and if the average a of S satisfies ||a - r||^2 <= delta, every member
// takes a (the reference stays). Otherwise S widens by the neighbours of its members, and once
// it would hold half the live nodes the driver runs a full synchronization instead: all live
// nodes take their average, which also becomes everyone's new reference.
//
// Members stand still in a balancing. A member answers with its model as it is when it stops:
// the request waits (at most fresh_reply_wait) for the training thread's next step boundary,
// which hands over its current model in stand_still() and then waits for the average. Without
// that wait (or when the training thread does not come: paused, evaluating, finished) the
// member answers with the snapshot of its last check and later adds a - snapshot, so no local
// progress is lost and the average of the set's models is preserved either way; but progress
// made since that check is then kept out of the average, and under label skew those up to
// `period` steps pull each model towards its own classes (bench/RESULTS-dynamic.md).
//
// Concurrency: a node in a balancing (as driver or member) joins no other until it ends; it
// answers other drivers "busy, held by k". Drivers resolve conflicts by id (wait-die): a driver
// blocked by a lower-id driver aborts and releases its set (it will see its violation again at
// its next check); one blocked by a higher-id driver retries until that one finishes or aborts.
// Waits-for edges only point from lower to higher ids, so there is no deadlock, and the
// lowest-id driver always finishes. A member whose driver vanishes frees itself after
// lock_timeout; a driver drops members that do not answer within reply_timeout, and at once
// those that answer that they have left (finished training: leave()). A member is also freed
// at once when its driver is declared dead or speaks from a new process (it restarted: the
// balancing died with the old one), and the lock timeout is checked however busy the node is,
// so a stream of other drivers' requests cannot keep it held.
//
// Wire precision. With f16, models travel as their drift from the reference, d = x - r, in
// binary16: half the bytes of f32, and since the drift is small (||d||^2 is about delta) its
// rounding error (relative 2^-11 of d, not of x) is far below what rounding x itself would
// cost. Every request carries the driver's reference checksum; a member whose reference is
// the same answers with its drift, any other (one left out of a full synchronization, or
// restored from an older checkpoint) with its whole model in f32, and gets the average back
// the same way. The driver decodes drifts as r + d, and commits the average a as
// c = r + q(a - r), the value every matching member rebuilds bit for bit from the binary16
// update (f32 members receive c itself), so after a full synchronization all references are
// still identical. A set's sum is preserved up to the binary16 rounding of its drifts.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <set>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "gossip/half_float.h"
#include "gossip/transport.h"
#include "gossip/wire_precision.h"
#include "topology/topology.h"

namespace starling::gossip {

struct DynamicOptions {
  double delta = 1.0;  // threshold on the squared L2 drift ||x - r||^2
  std::chrono::milliseconds reply_timeout{2000};
  // How long a member waits for its driver's update. A driver that could not commit within
  // it (less a margin) gives up, so it must cover every widening's reply_timeout.
  std::chrono::milliseconds lock_timeout{10000};
  // Of the balancing messages (the header's "Wire precision"); full synchronizations too.
  WirePrecision precision = WirePrecision::f32;
  // How long a member's answer waits for stand_still() to hand over the current model before
  // it goes out with the last check's snapshot. 0: at once (a caller that never calls
  // stand_still(), like the unit tests of the protocol itself).
  std::chrono::milliseconds fresh_reply_wait{0};
};

// What the training side applies, in order: x <- x + delta.
struct DynamicUpdate {
  std::uint64_t balancing = 0;
  std::vector<float> delta;
  bool full_sync = false;    // the reference became the average too
  std::size_t set_size = 0;  // members that were averaged
  std::size_t merged = 1;    // balancings whose deltas this one sums (see kMaxQueuedUpdates)
};

struct DynamicStats {
  std::uint64_t checks = 0;
  std::uint64_t violations = 0;
  std::uint64_t local_balancings = 0;  // driven by this node and ending in a local average
  std::uint64_t full_syncs = 0;        // driven by this node
  std::uint64_t aborted = 0;           // driven by this node and given up
  std::uint64_t joined = 0;            // balancings of others this node took part in
  std::uint64_t updates = 0;           // averages this node took (as driver or member)
  std::uint64_t reference_updates = 0; // full synchronizations this node took part in
  double last_drift = 0;
  double delta = 0;
  std::size_t last_set_size = 0;
};

class DynamicAverager {
 public:
  // Updates wait for the training thread, which takes none while the node is paused; the
  // protocol thread still joins balancings then. Past this many, a new update is added into
  // the last one (deltas compose by addition), so memory stays at a few models.
  static constexpr std::size_t kMaxQueuedUpdates = 8;

  // `reference`: the initial model (identical on every node: the cluster seed initialises it).
  DynamicAverager(Transport& transport, const topology::Topology& topology, DynamicOptions options,
                  std::span<const float> reference);
  ~DynamicAverager();
  DynamicAverager(const DynamicAverager&) = delete;

  // Opens the mailbox for the protocol's messages. Call it as soon as the transport exists:
  // a peer may start a balancing before this node has built its averager (which waits for the
  // first model), and its requests must be kept, not refused.
  static void open_mailbox(Transport& transport);
  DynamicAverager& operator=(const DynamicAverager&) = delete;

  // Training thread: publishes the model and checks ||model - r||^2 <= delta; a violation
  // starts a balancing on the protocol thread (unless this node is already in one). Returns
  // the squared drift. Averages taken but not yet applied (take_update()) count as applied.
  double check(std::span<const float> model);
  // Training thread: the next average to apply, if any.
  std::optional<DynamicUpdate> take_update();
  // Training thread, at every step boundary: if a driver waits for this node's model, hands it
  // `model` (the current one); then waits (at most `limit`) while this node has a violation
  // being handled or is in a balancing, so a balancing acts on models that stand still, as in
  // Kamp et al. Returns the time it waited.
  std::chrono::nanoseconds stand_still(std::span<const float> model, std::chrono::milliseconds limit);
  // True while this node has a violation being handled or is in a balancing, when
  // stand_still() will wait and may hand over the model: a caller whose `model` is a mirror
  // (CUDA) refreshes it first only then.
  bool involved() const;

  // Stops taking part: no new balancings (requests get "busy"), and waits up to `limit` for
  // the one this node is in to end, so every average it agreed to reaches take_update().
  void leave(std::chrono::milliseconds limit);

  std::vector<float> reference() const;
  void restore_reference(std::span<const float> reference);
  void set_delta(double delta);
  double delta() const;
  DynamicStats stats() const;

 private:
  // A driver's request not answered yet: it waits for stand_still() (fresh_reply_wait).
  struct PendingReply {
    std::uint64_t attempt = 0;        // the request's aux0
    std::uint64_t reference_id = 0;   // the driver's reference checksum (the request's aux1)
  };
  struct Lock {
    std::size_t driver = 0;
    std::uint64_t balancing = 0;
    std::uint64_t driver_incarnation = 0;  // the driver's process when it took this node
    // What this node contributed; null while the reply is pending.
    std::shared_ptr<const std::vector<float>> snapshot;
    Clock::time_point since;
    std::optional<PendingReply> reply;
  };
  enum class DriveResult { local, full, aborted };
  using Models = std::map<std::size_t, std::shared_ptr<const std::vector<float>>>;
  // One balancing this node drives.
  struct Drive {
    std::uint64_t id = 0;
    std::vector<float> reference;      // the driver's, at the start (only full syncs change it)
    std::uint32_t reference_id = 0;    // its checksum
    Models models;                     // what each member contributed (drifts decoded)
    std::set<std::size_t> asked;       // every member asked: any of them may hold a lock for us
    std::set<std::size_t> sent_drift;  // members that answered with a binary16 drift
  };

  void run();
  // Participant role: requests, updates and releases from drivers.
  void serve(ReceivedMessage& message);
  DriveResult drive(std::shared_ptr<const std::vector<float>> own);
  // Asks every member of `set` not in drive.models for its model until reply_timeout; serves
  // other drivers meanwhile (busy). False when a driver with priority holds a member
  // (wait-die).
  bool gather(Drive& drive, const std::vector<std::size_t>& set);
  // Sends the average to the set's members and queues this node's own update.
  void commit(const Drive& drive, const std::vector<std::size_t>& set, std::vector<float> average,
              const std::vector<float>& own, bool full);
  // A member takes its driver's average (serve()). Caller holds mutex_ and lock_ is that
  // balancing's.
  void take_average_locked(std::uint64_t balancing, std::shared_ptr<const std::vector<float>> average,
                           bool full);
  void set_reference_locked(std::span<const float> reference);
  // `model` plus every average taken but not yet applied by the training thread: the model
  // this node will have. What it publishes and hands over must count them, or a balancing
  // that starts before they are applied averages the model without them, and its correction
  // lands on top of theirs (the node's own deviation subtracted twice: that diverges).
  std::shared_ptr<const std::vector<float>> with_queued_updates_locked(std::span<const float> model) const;
  // Answers the driver holding this node with `snapshot` (now lock_->snapshot). Caller holds
  // mutex_.
  void reply_locked(std::shared_ptr<const std::vector<float>> snapshot, const PendingReply& request);
  // Sends a reply that waited past fresh_reply_wait with the last check's snapshot. Caller
  // holds mutex_.
  void reply_if_overdue_locked();
  std::vector<std::size_t> all_live() const;
  void reply_busy(std::size_t driver, std::uint64_t balancing, std::uint64_t attempt,
                  std::size_t blocker);
  void release(const std::vector<std::size_t>& members, std::uint64_t balancing);
  void queue_update_locked(DynamicUpdate update);  // caller holds mutex_
  // Frees this node from another driver's balancing that can no longer end: the driver is
  // dead, or it has held the node past lock_timeout. Caller holds mutex_.
  void expire_abandoned_lock_locked();
  std::vector<std::size_t> live_neighbours_of(const std::vector<std::size_t>& set) const;

  Transport& transport_;
  const topology::Topology& topology_;
  DynamicOptions options_;
  std::uint64_t next_balancing_;
  // Nodes that said they finished training, with the process that said it: a node stopped
  // and started again is back in the protocol as soon as its new process is heard from
  // (protocol thread only).
  std::map<std::size_t, std::uint64_t> left_;
  bool has_left(std::size_t node) const;
  std::uint64_t next_release_ = std::uint64_t{1} << 32;  // aux0 of releases (protocol thread only)

  // Shared between the training thread and the protocol thread. Lock order: mutex_, then the
  // mailbox's lock (never the other way round: give-up predicates read only atomics).
  mutable std::mutex mutex_;
  std::vector<float> reference_;
  std::uint32_t reference_id_ = 0;  // checksum of reference_ (wire precision f16)
  std::shared_ptr<const std::vector<float>> latest_;  // the last published model
  std::optional<Lock> lock_;
  std::deque<DynamicUpdate> updates_;
  DynamicStats stats_;
  // Logs, once, that binary16 could not carry a drift and float32 went instead.
  void say_drift_too_wide();
  std::atomic<bool> said_drift_too_wide_{false};
  std::atomic<bool> violation_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> leaving_{false};
  std::condition_variable unlocked_;  // lock_ was released, or a driver waits for our model
  std::thread thread_;
};

}  // namespace starling::gossip
