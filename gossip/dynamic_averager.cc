#include "gossip/dynamic_averager.h"

#include <spdlog/spdlog.h>

#include "gossip/checksum.h"
#include "gossip/lane_sum.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>

namespace starling::gossip {
namespace {

constexpr std::uint64_t kBusy = 1;  // balance_release aux1 bit: "busy, held by (aux1 >> 8) - 1"
constexpr std::uint64_t kLeft = 2;  // balance_release aux1 bit: "I have left (finished training)"
constexpr std::uint64_t kFullSync = 1;  // model_update aux1 bit: the average is the new reference
// model_update_f16 aux1: kFullSync | reference checksum << kReferenceShift. model_request and
// model_reply_f16 carry the checksum alone in aux1.
constexpr int kReferenceShift = 8;
const std::vector<MessageType> kProtocolTypes = {
    MessageType::model_request,     MessageType::model_reply,      MessageType::model_update,
    MessageType::balance_release,   MessageType::model_reply_f16,  MessageType::model_update_f16};

bool is_reply(MessageType type) {
  return type == MessageType::model_reply || type == MessageType::model_reply_f16;
}

std::uint32_t checksum_of(std::span<const float> values) {
  return payload_checksum(std::as_bytes(values));
}

// x - r in binary16, a block at a time (no model-sized float temporary). Null when a
// difference is beyond binary16 (NaN, Inf, or |d| >= 65520): it would reach the receivers as
// Inf, which they refuse, so callers send float32 instead.
std::shared_ptr<const HalfBuffer> drift_of(std::span<const float> x, std::span<const float> r) {
  constexpr std::size_t kBlock = 1024;
  auto halves = std::make_shared<HalfBuffer>(x.size());  // every value written below
  float block[kBlock];
  bool representable = true;
  for (std::size_t start = 0; start < x.size(); start += kBlock) {
    const std::size_t n = std::min(kBlock, x.size() - start);
    for (std::size_t k = 0; k < n; ++k) block[k] = x[start + k] - r[start + k];
    representable &= floats_to_halves(std::span<const float>(block, n),
                                      std::span<Half>(halves->data() + start, n));
  }
  if (!representable) return nullptr;
  return halves;
}

// a - b: what a node adds to the model it handed over to take an average.
std::vector<float> difference(std::span<const float> a, std::span<const float> b) {
  std::vector<float> out(a.size());
  for (std::size_t k = 0; k < a.size(); ++k) out[k] = a[k] - b[k];
  return out;
}

// r + d: the model a binary16 drift stands for (every node computes it the same way).
std::shared_ptr<const std::vector<float>> from_drift(std::span<const Half> drift,
                                                     std::span<const float> r) {
  auto model = std::make_shared<std::vector<float>>(drift.size());
  halves_to_floats(drift, *model);
  for (std::size_t k = 0; k < drift.size(); ++k) (*model)[k] += r[k];
  return model;
}

// In double, in lanes (gossip/lane_sum.h): with one accumulator, every drift check was a
// scalar chain of dependent additions over the whole model.
double squared_distance(std::span<const float> a, std::span<const float> b) {
  return sum_in_lanes<double>(0, a.size(), [&](std::size_t k) {
    const double d = static_cast<double>(a[k]) - static_cast<double>(b[k]);
    return d * d;
  });
}

}  // namespace

DynamicAverager::DynamicAverager(Transport& transport, const topology::Topology& topology,
                                 DynamicOptions options, std::span<const float> reference)
    : transport_(transport),
      topology_(topology),
      options_(options),
      // Balancing ids are unique cluster-wide: the driver's index in the high bits.
      next_balancing_((static_cast<std::uint64_t>(transport.self()) + 1) << 40),
      reference_(reference.begin(), reference.end()),
      reference_id_(checksum_of(reference)) {
  stats_.delta = options_.delta;
  open_mailbox(transport_);
  thread_ = std::thread([this] { run(); });
}

void DynamicAverager::open_mailbox(Transport& transport) {
  for (MessageType type : kProtocolTypes) {
    transport.mailbox().set_window(type, 0, std::numeric_limits<std::uint64_t>::max());
  }
}

DynamicAverager::~DynamicAverager() {
  stopping_.store(true);
  transport_.mailbox().wake_all();
  if (thread_.joinable()) thread_.join();
}

void DynamicAverager::leave(std::chrono::milliseconds limit) {
  leaving_.store(true);
  transport_.mailbox().wake_all();  // run() drops a pending violation now (see there)
  std::unique_lock lock(mutex_);
  unlocked_.wait_for(lock, limit, [this] { return !lock_.has_value() && !violation_.load(); });
}

bool DynamicAverager::involved() const {
  std::lock_guard lock(mutex_);
  return lock_.has_value() || violation_.load();
}

std::chrono::nanoseconds DynamicAverager::stand_still(std::span<const float> model,
                                                      std::chrono::milliseconds limit) {
  const auto start = Clock::now();
  const auto deadline = start + limit;
  const std::size_t self = transport_.self();
  auto model_wanted = [&] { return lock_ && lock_->reply && lock_->driver != self; };
  std::unique_lock lock(mutex_);
  while (true) {
    // A request may come while this thread already stands still (for its own violation, say):
    // it is answered from here too, with the model that is not moving.
    if (model_wanted() && model.size() == reference_.size()) {
      auto snapshot = with_queued_updates_locked(model);
      latest_ = snapshot;
      reply_locked(std::move(snapshot), *lock_->reply);
    }
    const bool woke = unlocked_.wait_until(lock, deadline, [&] {
      return stopping_.load() || (!lock_.has_value() && !violation_.load()) || model_wanted();
    });
    if (!woke || !model_wanted()) break;
  }
  return Clock::now() - start;
}

std::shared_ptr<const std::vector<float>> DynamicAverager::with_queued_updates_locked(
    std::span<const float> model) const {
  auto out = std::make_shared<std::vector<float>>(model.begin(), model.end());
  for (const DynamicUpdate& update : updates_) {
    if (update.delta.size() != out->size()) continue;
    for (std::size_t k = 0; k < out->size(); ++k) (*out)[k] += update.delta[k];
  }
  return out;
}

double DynamicAverager::check(std::span<const float> model) {
  double drift;
  bool violated = false;
  {
    std::lock_guard lock(mutex_);
    auto snapshot = with_queued_updates_locked(model);
    latest_ = snapshot;
    drift = squared_distance(*snapshot, reference_);
    ++stats_.checks;
    stats_.last_drift = drift;
    if (drift > options_.delta && !lock_ && !violation_.load() && !leaving_.load()) {
      ++stats_.violations;
      violated = true;
    }
  }
  if (violated) {
    violation_.store(true);
    transport_.mailbox().wake_all();
  }
  return drift;
}

std::optional<DynamicUpdate> DynamicAverager::take_update() {
  std::lock_guard lock(mutex_);
  if (updates_.empty()) return std::nullopt;
  DynamicUpdate update = std::move(updates_.front());
  updates_.pop_front();
  return update;
}

std::vector<float> DynamicAverager::reference() const {
  std::lock_guard lock(mutex_);
  return reference_;
}

void DynamicAverager::restore_reference(std::span<const float> reference) {
  std::lock_guard lock(mutex_);
  set_reference_locked(reference);
}

void DynamicAverager::set_reference_locked(std::span<const float> reference) {
  reference_.assign(reference.begin(), reference.end());
  reference_id_ = checksum_of(reference_);
}

void DynamicAverager::set_delta(double delta) {
  std::lock_guard lock(mutex_);
  options_.delta = delta;
  stats_.delta = delta;
}

double DynamicAverager::delta() const {
  std::lock_guard lock(mutex_);
  return options_.delta;
}

DynamicStats DynamicAverager::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

std::vector<std::size_t> DynamicAverager::live_neighbours_of(const std::vector<std::size_t>& set) const {
  std::set<std::size_t> out(set.begin(), set.end());
  for (std::size_t member : set) {
    for (std::size_t n : topology_.graph().neighbours(member)) {
      if (n == transport_.self() || (transport_.peers().is_alive(n) && !has_left(n))) out.insert(n);
    }
  }
  return {out.begin(), out.end()};
}

void DynamicAverager::reply_busy(std::size_t driver, std::uint64_t balancing,
                                 std::uint64_t attempt, std::size_t blocker) {
  OutgoingMessage busy;
  busy.type = MessageType::balance_release;
  busy.tag = balancing;
  busy.aux0 = attempt;
  busy.aux1 = kBusy | ((static_cast<std::uint64_t>(blocker) + 1) << 8);
  transport_.send(driver, std::move(busy));
}

void DynamicAverager::release(const std::vector<std::size_t>& members, std::uint64_t balancing) {
  OutgoingMessage message;
  message.type = MessageType::balance_release;
  message.tag = balancing;
  for (std::size_t m : members) {
    if (m == transport_.self()) continue;
    // Not an attempt number: above every attempt, and new for each release, because a member
    // may rightly be released twice for one balancing (left out, then freed again on abort)
    // and the mailbox refuses a repeated (tag, aux0) as a replay.
    message.aux0 = next_release_++;
    transport_.send(m, message);
  }
}

void DynamicAverager::serve(ReceivedMessage& message) {
  const Header& h = message.header();
  const std::size_t from = message.sender();
  std::lock_guard lock(mutex_);
  if (lock_ && lock_->driver == from && from != transport_.self() &&
      h.incarnation != lock_->driver_incarnation) {
    // The driver restarted: its balancing died with its old process and will never end.
    spdlog::info("balancing {:x} of {} ended with its process (it restarted); leaving it",
                 lock_->balancing, transport_.peers().id(from));
    lock_.reset();
    unlocked_.notify_all();
  }
  switch (h.type) {
    case MessageType::model_request: {
      const bool ours = lock_ && lock_->driver == from && lock_->balancing == h.tag;
      if (leaving_.load() && !ours) {
        // Done training: out of every balancing from now on, and the driver should know it.
        OutgoingMessage left;
        left.type = MessageType::balance_release;
        left.tag = h.tag;
        left.aux0 = h.aux0;
        left.aux1 = kLeft;
        transport_.send(from, std::move(left));
        return;
      }
      if (lock_ && !ours) {
        // In another balancing (or driving one): tell the driver who holds this node.
        reply_busy(from, h.tag, h.aux0, lock_->driver);
        return;
      }
      if (!latest_) {
        reply_busy(from, h.tag, h.aux0, transport_.self());  // nothing published yet
        return;
      }
      const PendingReply request{h.aux0, h.aux1};
      if (!ours) {
        lock_ = Lock{from, h.tag, h.incarnation, nullptr, Clock::now(), std::nullopt};
        ++stats_.joined;
        if (options_.fresh_reply_wait.count() > 0) {
          lock_->reply = request;  // stand_still() answers with the current model
          unlocked_.notify_all();  // if the training thread already stands still
          return;
        }
        reply_locked(latest_, request);
        return;
      }
      if (lock_->reply) {
        lock_->reply = request;  // asked again while the answer waits: answer this attempt
        return;
      }
      reply_locked(lock_->snapshot, request);
      return;
    }
    case MessageType::model_update: {
      // Stale, or (never from a correct driver) before this node answered.
      if (!lock_ || lock_->driver != from || lock_->balancing != h.tag || !lock_->snapshot) return;
      auto average = message.floats();
      if (average.size() != lock_->snapshot->size()) return;
      take_average_locked(h.tag, std::make_shared<const std::vector<float>>(average.begin(), average.end()),
                          (h.aux1 & kFullSync) != 0);
      return;
    }
    case MessageType::model_update_f16: {
      if (!lock_ || lock_->driver != from || lock_->balancing != h.tag || !lock_->snapshot) return;
      auto drift = message.halves();
      if (drift.size() != lock_->snapshot->size()) return;
      if ((h.aux1 >> kReferenceShift) != reference_id_) {
        // Cannot happen between correct nodes (this node answered with a drift only because
        // the references matched, and only a full synchronization changes one); dropping it
        // leaves this node out of the set, as a member that never got the update would be.
        spdlog::warn("balancing {:x} of {}: a binary16 update against another reference; ignored",
                     h.tag, transport_.peers().id(from));
        return;
      }
      take_average_locked(h.tag, from_drift(drift, reference_), (h.aux1 & kFullSync) != 0);
      return;
    }
    case MessageType::balance_release:
      if ((h.aux1 & kBusy) == 0 && lock_ && lock_->driver == from && lock_->balancing == h.tag) {
        lock_.reset();
        unlocked_.notify_all();
      }
      return;
    case MessageType::model_reply:
    case MessageType::model_reply_f16:
      // A member answering a balancing this node no longer drives (it gave up, or left the
      // member out): free it now rather than after its lock_timeout.
      release({from}, h.tag);
      return;
    default: return;
  }
}

void DynamicAverager::reply_locked(std::shared_ptr<const std::vector<float>> snapshot,
                                   const PendingReply& request) {
  lock_->snapshot = std::move(snapshot);
  lock_->reply.reset();
  OutgoingMessage reply;
  reply.tag = lock_->balancing;
  reply.aux0 = request.attempt;
  std::shared_ptr<const HalfBuffer> drift;
  if (options_.precision == WirePrecision::f16 && request.reference_id == reference_id_) {
    drift = drift_of(*lock_->snapshot, reference_);
    if (!drift) say_drift_too_wide();
  }
  if (drift) {
    reply.type = MessageType::model_reply_f16;
    reply.aux1 = reference_id_;
    reply.payload = make_payload(*drift, drift);
  } else {
    reply.type = MessageType::model_reply;
    reply.payload = make_payload(*lock_->snapshot, lock_->snapshot);
  }
  transport_.send(lock_->driver, std::move(reply));
}

void DynamicAverager::say_drift_too_wide() {
  if (said_drift_too_wide_.exchange(true)) return;
  spdlog::warn("this node's model is further from its reference than binary16 can carry "
               "(|x - r| >= 65520, or not finite), so it sends that model or average in "
               "float32 instead of wire_precision = \"f16\" (said once)");
}

void DynamicAverager::reply_if_overdue_locked() {
  if (!lock_ || !lock_->reply || Clock::now() - lock_->since < options_.fresh_reply_wait) return;
  reply_locked(latest_, *lock_->reply);  // the training thread did not come: the last check's
}

void DynamicAverager::take_average_locked(std::uint64_t balancing,
                                          std::shared_ptr<const std::vector<float>> average,
                                          bool full) {
  DynamicUpdate update;
  update.balancing = balancing;
  update.full_sync = full;
  update.delta = difference(*average, *lock_->snapshot);
  if (full) {
    set_reference_locked(*average);
    ++stats_.reference_updates;
  }
  // Until the next check, this node's model is the average (plus local progress, which the
  // delta keeps). A later balancing must be answered with it: answering with the old snapshot
  // would apply the old model's correction twice and diverge.
  latest_ = std::move(average);
  ++stats_.updates;
  queue_update_locked(std::move(update));
  lock_.reset();
  unlocked_.notify_all();
}

void DynamicAverager::expire_abandoned_lock_locked() {
  if (!lock_ || lock_->driver == transport_.self()) return;
  const bool driver_dead = transport_.peers().is_dead(lock_->driver);
  const bool driver_restarted = transport_.peers().incarnation(lock_->driver) > lock_->driver_incarnation;
  if (!driver_dead && !driver_restarted && Clock::now() - lock_->since <= options_.lock_timeout) return;
  spdlog::warn("balancing {:x} of {} never ended ({}); leaving it", lock_->balancing,
               transport_.peers().id(lock_->driver),
               driver_dead ? "its driver is dead" : driver_restarted ? "its driver restarted" : "timed out");
  lock_.reset();
  unlocked_.notify_all();
}

void DynamicAverager::queue_update_locked(DynamicUpdate update) {
  if (updates_.size() < kMaxQueuedUpdates) {
    updates_.push_back(std::move(update));
    return;
  }
  DynamicUpdate& last = updates_.back();
  for (std::size_t k = 0; k < last.delta.size(); ++k) last.delta[k] += update.delta[k];
  last.balancing = update.balancing;
  last.full_sync = last.full_sync || update.full_sync;
  last.set_size = update.set_size;
  last.merged += update.merged;
}

bool DynamicAverager::has_left(std::size_t node) const {
  auto it = left_.find(node);
  return it != left_.end() && transport_.peers().incarnation(node) <= it->second;
}

std::vector<std::size_t> DynamicAverager::all_live() const {
  std::vector<std::size_t> live;
  for (std::size_t i = 0; i < transport_.size(); ++i) {
    if (i == transport_.self() || (transport_.peers().is_alive(i) && !has_left(i))) {
      live.push_back(i);
    }
  }
  return live;
}

bool DynamicAverager::gather(Drive& drive, const std::vector<std::size_t>& set) {
  const std::size_t self = transport_.self();
  std::map<std::size_t, Clock::time_point> retry_at;  // members to ask (again), and when
  std::map<std::size_t, std::uint64_t> attempts;
  for (std::size_t m : set) {
    if (!drive.models.count(m)) retry_at[m] = Clock::now();
  }
  auto waiting = [&] {
    return std::any_of(set.begin(), set.end(),
                       [&](std::size_t m) { return !drive.models.count(m) && !has_left(m); });
  };
  const std::size_t model_size = drive.models.at(self)->size();
  const auto deadline = Clock::now() + options_.reply_timeout;
  while (waiting() && Clock::now() < deadline && !stopping_.load()) {
    auto next_retry = deadline;
    for (auto it = retry_at.begin(); it != retry_at.end();) {
      if (it->second <= Clock::now()) {
        OutgoingMessage request;
        request.type = MessageType::model_request;
        request.tag = drive.id;
        request.aux0 = attempts[it->first]++;
        request.aux1 = drive.reference_id;  // a member with the same reference sends its drift
        transport_.send(it->first, std::move(request));
        drive.asked.insert(it->first);
        it = retry_at.erase(it);
      } else {
        next_retry = std::min(next_retry, it->second);
        ++it;
      }
    }
    auto message = transport_.mailbox().take_any_of(kProtocolTypes, next_retry,
                                                     [this] { return stopping_.load(); });
    if (!message) continue;
    const Header& h = message->header();
    const std::size_t from = message->sender();
    const bool mine = h.tag == drive.id &&
                      (is_reply(h.type) || h.type == MessageType::balance_release);
    if (!mine) {
      if (is_reply(h.type)) {
        release({from}, h.tag);  // a member answering a balancing this node gave up: free it
      } else {
        serve(*message);  // another driver's request: busy, held by this node
      }
      continue;
    }
    if (h.type == MessageType::model_reply) {
      auto values = message->floats();
      if (values.size() == model_size && !drive.models.count(from)) {
        drive.models[from] = std::make_shared<const std::vector<float>>(values.begin(), values.end());
      }
      continue;
    }
    if (h.type == MessageType::model_reply_f16) {
      auto drift = message->halves();
      // A drift from another reference would decode to a wrong model: such a reply is left
      // out (members only send one when the checksums match).
      if (drift.size() == model_size && h.aux1 == drive.reference_id && !drive.models.count(from)) {
        drive.models[from] = from_drift(drift, drive.reference);
        drive.sent_drift.insert(from);
      }
      continue;
    }
    if ((h.aux1 & kLeft) != 0) {
      left_[from] = h.incarnation;  // not asked again (unless it restarts); the set goes on
      retry_at.erase(from);
      continue;
    }
    if ((h.aux1 & kBusy) != 0) {
      const std::size_t blocker = static_cast<std::size_t>(h.aux1 >> 8) - 1;
      // Wait-die: a driver with a lower id has priority; give way to it.
      if (blocker < self) return false;
      retry_at[from] = Clock::now() + std::chrono::milliseconds(5);
    }
  }
  return !stopping_.load();
}

DynamicAverager::DriveResult DynamicAverager::drive(std::shared_ptr<const std::vector<float>> own) {
  const std::size_t self = transport_.self();
  Drive drive;
  drive.id = next_balancing_++;
  const auto started = Clock::now();
  double delta;
  {
    std::lock_guard lock(mutex_);
    lock_ = Lock{self, drive.id, 0, own, Clock::now(), std::nullopt};
    drive.reference = reference_;
    drive.reference_id = reference_id_;
    delta = options_.delta;
    violation_.store(false);  // now handled (lock_ is set first: waiters never see neither)
  }
  drive.models = {{self, own}};
  auto abort = [&](const char* why) {
    release({drive.asked.begin(), drive.asked.end()}, drive.id);
    spdlog::debug("balancing {:x} aborted: {}", drive.id, why);
    std::lock_guard lock(mutex_);
    ++stats_.aborted;
    if (lock_ && lock_->driver == self) lock_.reset();
    unlocked_.notify_all();
    return DriveResult::aborted;
  };

  const std::size_t live = all_live().size();
  std::vector<std::size_t> set = live_neighbours_of({self});
  bool full = 2 * set.size() >= live;  // the neighbourhood already is half the cluster
  if (full) set = all_live();
  while (true) {
    if (!gather(drive, set)) {
      return abort("a member is held by a driver with priority");
    }
    // Members that never answered are left out (gone or stuck); if one locked itself for us
    // after all, the release frees it.
    std::vector<std::size_t> heard, silent;
    for (std::size_t m : set) {
      (drive.models.count(m) ? heard : silent).push_back(m);
    }
    release(silent, drive.id);
    if (heard.size() < 2) return abort("no member answered");
    set = heard;

    std::vector<float> average(own->size(), 0.0f);
    const float inv = 1.0f / static_cast<float>(set.size());
    for (std::size_t m : set) {
      const float* x = drive.models.at(m)->data();
      for (std::size_t k = 0; k < average.size(); ++k) average[k] += x[k] * inv;
    }
    if (full || squared_distance(average, drive.reference) <= delta) {
      // Members free themselves lock_timeout after they joined (never before this drive
      // started). Past that, less a margin for the update's way there, one of them may have
      // left and would ignore the average while the others take it: the set's sum would not
      // be preserved, and after a full synchronization the references would differ. Give up
      // instead (the violation comes back at the next check).
      if (Clock::now() - started > options_.lock_timeout - options_.lock_timeout / 5) {
        return abort("took longer than members stay locked");
      }
      // Members asked in an earlier, wider attempt but not in the final set are freed.
      std::vector<std::size_t> outside;
      for (std::size_t m : drive.asked) {
        if (!std::count(set.begin(), set.end(), m)) outside.push_back(m);
      }
      release(outside, drive.id);
      commit(drive, set, std::move(average), *own, full);
      return full ? DriveResult::full : DriveResult::local;
    }
    // Widen by the neighbours of the set; at half the live nodes, synchronize them all.
    auto wider = live_neighbours_of(set);
    if (2 * wider.size() >= live || wider.size() == set.size()) {
      full = true;
      wider = all_live();
    }
    set = std::move(wider);
  }
}

void DynamicAverager::commit(const Drive& drive, const std::vector<std::size_t>& set,
                             std::vector<float> average, const std::vector<float>& own, bool full) {
  const std::size_t self = transport_.self();
  const std::uint64_t flags = full ? kFullSync : 0;
  // What everyone takes: the average itself, or with f16 the value r + q(a - r) that every
  // member rebuilds bit for bit from the binary16 update.
  // A drift binary16 cannot carry (a member far from the reference) is sent as the average
  // itself, in float32, to every member: the driver takes what the members take.
  std::shared_ptr<const std::vector<float>> committed;
  std::optional<OutgoingMessage> as_drift;
  std::shared_ptr<const HalfBuffer> drift;
  if (options_.precision == WirePrecision::f16) {
    drift = drift_of(average, drive.reference);
    if (!drift) say_drift_too_wide();
  }
  if (drift) {
    committed = from_drift(*drift, drive.reference);
    as_drift.emplace();
    as_drift->type = MessageType::model_update_f16;
    as_drift->tag = drive.id;
    as_drift->aux1 = flags | (static_cast<std::uint64_t>(drive.reference_id) << kReferenceShift);
    as_drift->payload = make_payload(*drift, drift);
  } else {
    committed = std::make_shared<const std::vector<float>>(std::move(average));
  }
  std::optional<OutgoingMessage> as_model;  // built only if a member needs it (one checksum pass)
  for (std::size_t m : set) {
    if (m == self) continue;
    if (as_drift && drive.sent_drift.count(m)) {
      transport_.send(m, *as_drift);
      continue;
    }
    if (!as_model) {
      as_model.emplace();
      as_model->type = MessageType::model_update;
      as_model->tag = drive.id;
      as_model->aux1 = flags;
      as_model->payload = make_payload(*committed, committed);
    }
    transport_.send(m, *as_model);
  }
  DynamicUpdate mine;
  mine.balancing = drive.id;
  mine.full_sync = full;
  mine.set_size = set.size();
  mine.delta = difference(*committed, own);
  std::lock_guard lock(mutex_);
  latest_ = committed;  // see serve(): later balancings must see the averaged model
  if (full) {
    set_reference_locked(*committed);
    ++stats_.full_syncs;
    ++stats_.reference_updates;
  } else {
    ++stats_.local_balancings;
  }
  ++stats_.updates;
  stats_.last_set_size = set.size();
  queue_update_locked(std::move(mine));
  lock_.reset();
  unlocked_.notify_all();
}

void DynamicAverager::run() {
  while (!stopping_.load()) {
    auto wake_at = Clock::now() + std::chrono::milliseconds(100);
    {
      std::lock_guard lock(mutex_);
      if (lock_ && lock_->reply) wake_at = std::min(wake_at, lock_->since + options_.fresh_reply_wait);
    }
    auto message = transport_.mailbox().take_any_of(
        kProtocolTypes, wake_at, [this] { return stopping_.load() || violation_.load(); });
    {
      // Checked on every pass, not only when the mailbox is quiet: other drivers retry their
      // requests every few milliseconds while this node is held, and a check that waited for
      // silence would never run (a restart soak caught two nodes held for minutes that way).
      std::lock_guard lock(mutex_);
      expire_abandoned_lock_locked();
      reply_if_overdue_locked();
    }
    // A violation is handled after any message served with it: under a steady stream of
    // requests it would otherwise wait for a quiet mailbox, and the training thread with it.
    if (message) serve(*message);
    if (!violation_.load()) continue;
    std::shared_ptr<const std::vector<float>> own;
    {
      std::lock_guard lock(mutex_);
      if (lock_ || !latest_ || leaving_.load()) {
        // Taken into another node's balancing since the violation: that settles it for now.
        // A node that is leaving drives nothing: its caller has applied its last updates and
        // would never see the average of a balancing it started now.
        violation_.store(false);
        unlocked_.notify_all();
        continue;
      }
      own = latest_;
    }
    drive(own);
  }
}

}  // namespace starling::gossip
