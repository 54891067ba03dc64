#pragma once
// Mailbox: validated messages waiting for the algorithm that will consume them.
//
// The network thread deliver()s; algorithm threads take() by exact key with a deadline. The
// mailbox enforces the per-type tag window and replay protection, so an algorithm only ever
// sees each (type, tag, sender, aux0) once, from the sender's newest incarnation, within the
// window it announced with set_window(). Buffering is bounded per sender.
//
// Lock order: Mailbox::mutex_ is a leaf lock (nothing else is locked while holding it, and
// give-up predicates passed to take() must not lock anything that calls into the mailbox).
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <tuple>
#include <vector>

#include "gossip/message.h"

namespace starling::gossip {

using Clock = std::chrono::steady_clock;

struct MailboxKey {
  MessageType type = MessageType::gossip_params;
  std::uint64_t tag = 0;
  std::uint32_t sender = 0;
  std::uint64_t aux0 = 0;
  auto operator<=>(const MailboxKey&) const = default;
};

class Mailbox {
 public:
  // `replay_horizon`: how long a delivered (type, tag, sender, aux0) is remembered to refuse
  // its replay. Windows forget what falls below them; types whose window never moves (the
  // dynamic averaging protocol's) would otherwise remember every message of a run, so
  // memory is bounded by the message rate times the horizon. A replay older than that is
  // not refused; the protocols tolerate stale messages (they match them against what is
  // open), and the transport never duplicates one.
  Mailbox(std::size_t cluster_size, std::size_t per_sender_limit,
          std::chrono::milliseconds replay_horizon = std::chrono::minutes(2));

  // Network side. Returns why the message was refused, or nullopt if it was stored.
  std::optional<RejectReason> deliver(ReceivedMessage message);

  // Accept tags of `type` in [low, high]; buffered or future messages below `low` are late.
  // Types without a window are refused (round_outside_window): every payload type must be
  // opened by the algorithm that consumes it.
  void set_window(MessageType type, std::uint64_t low, std::uint64_t high);

  // Waits until the message with `key` is there, `deadline` passes, `give_up()` returns true
  // (checked on every wake-up; wake_all() forces one), or the mailbox is closed.
  std::optional<ReceivedMessage> take(const MailboxKey& key, Clock::time_point deadline,
                                      const std::function<bool()>& give_up = {});
  std::optional<ReceivedMessage> try_take(const MailboxKey& key);

  enum class TakeStatus { taken, aborted, foreign_sender, timed_out, gave_up };
  // Like take(), but also returns `aborted` as soon as any message of (abort_type, abort_tag)
  // is in the mailbox (it is left there, so every waiter of that collective sees it), and
  // `foreign_sender` when a message of key.type and key.tag arrives from anyone but
  // key.sender (in a ring, only the left neighbour may send this collective's chunks: anyone
  // else has another ring in mind).
  TakeStatus take_unless_aborted(const MailboxKey& key, MessageType abort_type,
                                 std::uint64_t abort_tag, Clock::time_point deadline,
                                 const std::function<bool()>& give_up,
                                 std::optional<ReceivedMessage>& out);
  // Waits for a condition outside the mailbox (e.g. a connection coming up) the way
  // take_unless_aborted waits for a message: returns `taken` once `ready()` holds, `aborted`
  // once a message of (abort_type, abort_tag) is buffered, `gave_up` when `give_up()` holds
  // or the mailbox is closed, `timed_out` at `deadline`. Both functions are called with the
  // mailbox locked (they must not use it) and re-checked on every wake-up: whoever changes
  // what they read calls wake_all().
  TakeStatus wait_unless_aborted(const std::function<bool()>& ready, MessageType abort_type,
                                 std::uint64_t abort_tag, Clock::time_point deadline,
                                 const std::function<bool()>& give_up);
  // Whether a message of (type, tag) from anyone is buffered.
  bool contains(MessageType type, std::uint64_t tag) const;
  // The buffered message of `type` with the lowest key, if any (e.g. requests to serve).
  std::optional<ReceivedMessage> try_take_any(MessageType type);
  // Waits for any message of `type` (or until deadline / give_up / close).
  std::optional<ReceivedMessage> take_any(MessageType type, Clock::time_point deadline,
                                          const std::function<bool()>& give_up = {});
  // Waits for a message of any of `types` (lowest key first within the first type that has one).
  std::optional<ReceivedMessage> take_any_of(const std::vector<MessageType>& types,
                                             Clock::time_point deadline,
                                             const std::function<bool()>& give_up = {});

  void wake_all();
  void close();
  std::size_t buffered() const;
  // How many delivered messages are remembered for replay protection.
  std::size_t remembered() const;

 private:
  struct Window {
    std::uint64_t low = 0;
    std::uint64_t high = 0;
  };
  using SeenKey = std::tuple<std::uint64_t /*tag*/, std::uint32_t /*sender*/, std::uint64_t /*aux0*/>;

  void drop_below(MessageType type, std::uint64_t low);  // requires mutex_
  bool contains_locked(MessageType type, std::uint64_t tag) const;  // requires mutex_
  std::optional<ReceivedMessage> pop_first_locked(MessageType type);  // requires mutex_
  // A message of (type, tag) from a sender other than `sender`; requires mutex_.
  bool other_sender_locked(MessageType type, std::uint64_t tag, std::uint32_t sender) const;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::size_t per_sender_limit_;
  bool closed_ = false;
  std::map<MessageType, Window> windows_;
  std::map<MailboxKey, ReceivedMessage> messages_;
  std::map<MessageType, std::map<SeenKey, Clock::time_point>> seen_;  // when delivered
  // Every entry of seen_ in delivery order, to forget those older than replay_horizon_ (an
  // entry may already be gone from seen_, or delivered again after it went: windows and new
  // incarnations drop entries too; only the entry of that delivery time is forgotten).
  struct Remembered {
    Clock::time_point at;
    MessageType type;
    SeenKey key;
  };
  std::deque<Remembered> seen_order_;
  std::vector<std::uint64_t> incarnation_;  // newest incarnation seen per sender
  std::vector<std::size_t> buffered_per_sender_;
  std::chrono::milliseconds replay_horizon_;
};

}  // namespace starling::gossip
