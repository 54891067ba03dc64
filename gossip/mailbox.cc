#include "gossip/mailbox.h"

#include <stdexcept>

namespace starling::gossip {

Mailbox::Mailbox(std::size_t cluster_size, std::size_t per_sender_limit,
                 std::chrono::milliseconds replay_horizon)
    : per_sender_limit_(per_sender_limit),
      incarnation_(cluster_size, 0),
      buffered_per_sender_(cluster_size, 0),
      replay_horizon_(replay_horizon) {}

std::optional<RejectReason> Mailbox::deliver(ReceivedMessage message) {
  const Header& h = message.header();
  std::unique_lock lock(mutex_);
  if (h.sender >= incarnation_.size()) return RejectReason::unknown_sender;
  if (h.incarnation < incarnation_[h.sender]) return RejectReason::replayed;
  if (h.incarnation > incarnation_[h.sender]) {
    // A restarted node may legitimately reuse tags its previous incarnation sent.
    incarnation_[h.sender] = h.incarnation;
    for (auto& [type, keys] : seen_) {
      std::erase_if(keys, [&](const auto& entry) { return std::get<1>(entry.first) == h.sender; });
    }
    std::erase_if(messages_, [&](const auto& entry) {
      if (entry.first.sender != h.sender) return false;
      --buffered_per_sender_[h.sender];
      return true;
    });
  }
  auto window = windows_.find(h.type);
  if (window == windows_.end()) return RejectReason::round_outside_window;
  if (h.tag < window->second.low) return RejectReason::late;
  if (h.tag > window->second.high) return RejectReason::round_outside_window;
  const auto now = Clock::now();
  while (!seen_order_.empty() && now - seen_order_.front().at > replay_horizon_) {
    const Remembered& oldest = seen_order_.front();
    auto& seen = seen_[oldest.type];
    auto it = seen.find(oldest.key);
    if (it != seen.end() && it->second == oldest.at) seen.erase(it);
    seen_order_.pop_front();
  }
  SeenKey seen_key{h.tag, h.sender, h.aux0};
  if (!seen_[h.type].emplace(seen_key, now).second) return RejectReason::replayed;
  seen_order_.push_back(Remembered{now, h.type, seen_key});
  if (buffered_per_sender_[h.sender] >= per_sender_limit_) return RejectReason::mailbox_full;
  MailboxKey key{h.type, h.tag, h.sender, h.aux0};
  ++buffered_per_sender_[h.sender];
  messages_.emplace(key, std::move(message));
  lock.unlock();
  changed_.notify_all();
  return std::nullopt;
}

void Mailbox::drop_below(MessageType type, std::uint64_t low) {
  auto begin = messages_.lower_bound(MailboxKey{type, 0, 0, 0});
  auto end = messages_.lower_bound(MailboxKey{type, low, 0, 0});
  for (auto it = begin; it != end; ++it) --buffered_per_sender_[it->first.sender];
  messages_.erase(begin, end);
  auto& seen = seen_[type];
  seen.erase(seen.begin(), seen.lower_bound(SeenKey{low, 0, 0}));
}

void Mailbox::set_window(MessageType type, std::uint64_t low, std::uint64_t high) {
  if (high < low) throw std::invalid_argument("Mailbox::set_window: high < low");
  std::lock_guard lock(mutex_);
  windows_[type] = Window{low, high};
  drop_below(type, low);
}

std::optional<ReceivedMessage> Mailbox::try_take(const MailboxKey& key) {
  std::lock_guard lock(mutex_);
  auto it = messages_.find(key);
  if (it == messages_.end()) return std::nullopt;
  ReceivedMessage message = std::move(it->second);
  --buffered_per_sender_[key.sender];
  messages_.erase(it);
  return message;
}

std::optional<ReceivedMessage> Mailbox::take(const MailboxKey& key, Clock::time_point deadline,
                                             const std::function<bool()>& give_up) {
  std::unique_lock lock(mutex_);
  while (true) {
    auto it = messages_.find(key);
    if (it != messages_.end()) {
      ReceivedMessage message = std::move(it->second);
      --buffered_per_sender_[key.sender];
      messages_.erase(it);
      return message;
    }
    if (closed_ || (give_up && give_up())) return std::nullopt;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout) {
      // One last look: the message may have arrived together with the timeout.
      it = messages_.find(key);
      if (it == messages_.end()) return std::nullopt;
    }
  }
}

bool Mailbox::contains_locked(MessageType type, std::uint64_t tag) const {
  auto it = messages_.lower_bound(MailboxKey{type, tag, 0, 0});
  return it != messages_.end() && it->first.type == type && it->first.tag == tag;
}

bool Mailbox::other_sender_locked(MessageType type, std::uint64_t tag,
                                  std::uint32_t sender) const {
  for (auto it = messages_.lower_bound(MailboxKey{type, tag, 0, 0});
       it != messages_.end() && it->first.type == type && it->first.tag == tag; ++it) {
    if (it->first.sender != sender) return true;
  }
  return false;
}

bool Mailbox::contains(MessageType type, std::uint64_t tag) const {
  std::lock_guard lock(mutex_);
  return contains_locked(type, tag);
}

Mailbox::TakeStatus Mailbox::take_unless_aborted(const MailboxKey& key, MessageType abort_type,
                                                 std::uint64_t abort_tag,
                                                 Clock::time_point deadline,
                                                 const std::function<bool()>& give_up,
                                                 std::optional<ReceivedMessage>& out) {
  std::unique_lock lock(mutex_);
  while (true) {
    auto it = messages_.find(key);
    if (it != messages_.end()) {
      out = std::move(it->second);
      --buffered_per_sender_[key.sender];
      messages_.erase(it);
      return TakeStatus::taken;
    }
    if (contains_locked(abort_type, abort_tag)) return TakeStatus::aborted;
    if (other_sender_locked(key.type, key.tag, key.sender)) return TakeStatus::foreign_sender;
    if (closed_ || (give_up && give_up())) return TakeStatus::gave_up;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout &&
        Clock::now() >= deadline) {
      it = messages_.find(key);
      if (it == messages_.end()) return TakeStatus::timed_out;
    }
  }
}

Mailbox::TakeStatus Mailbox::wait_unless_aborted(const std::function<bool()>& ready,
                                                 MessageType abort_type, std::uint64_t abort_tag,
                                                 Clock::time_point deadline,
                                                 const std::function<bool()>& give_up) {
  std::unique_lock lock(mutex_);
  while (true) {
    if (ready()) return TakeStatus::taken;
    if (contains_locked(abort_type, abort_tag)) return TakeStatus::aborted;
    if (closed_ || (give_up && give_up())) return TakeStatus::gave_up;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout &&
        Clock::now() >= deadline) {
      return ready() ? TakeStatus::taken : TakeStatus::timed_out;
    }
  }
}

std::optional<ReceivedMessage> Mailbox::pop_first_locked(MessageType type) {
  auto it = messages_.lower_bound(MailboxKey{type, 0, 0, 0});
  if (it == messages_.end() || it->first.type != type) return std::nullopt;
  ReceivedMessage message = std::move(it->second);
  --buffered_per_sender_[it->first.sender];
  messages_.erase(it);
  return message;
}

std::optional<ReceivedMessage> Mailbox::try_take_any(MessageType type) {
  std::lock_guard lock(mutex_);
  return pop_first_locked(type);
}

std::optional<ReceivedMessage> Mailbox::take_any(MessageType type, Clock::time_point deadline,
                                                 const std::function<bool()>& give_up) {
  return take_any_of({type}, deadline, give_up);
}

std::optional<ReceivedMessage> Mailbox::take_any_of(const std::vector<MessageType>& types,
                                                    Clock::time_point deadline,
                                                    const std::function<bool()>& give_up) {
  std::unique_lock lock(mutex_);
  while (true) {
    for (MessageType type : types) {
      if (auto message = pop_first_locked(type)) return message;
    }
    if (closed_ || (give_up && give_up())) return std::nullopt;
    if (changed_.wait_until(lock, deadline) == std::cv_status::timeout &&
        Clock::now() >= deadline) {
      for (MessageType type : types) {
        if (auto message = pop_first_locked(type)) return message;  // arrived with the timeout
      }
      return std::nullopt;
    }
  }
}

void Mailbox::wake_all() {
  { std::lock_guard lock(mutex_); }  // orders the wake-up after any state the caller changed
  changed_.notify_all();
}

void Mailbox::close() {
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  changed_.notify_all();
}

std::size_t Mailbox::buffered() const {
  std::lock_guard lock(mutex_);
  return messages_.size();
}

std::size_t Mailbox::remembered() const {
  std::lock_guard lock(mutex_);
  std::size_t n = 0;
  for (const auto& [type, seen] : seen_) n += seen.size();
  return n;
}

}  // namespace starling::gossip
