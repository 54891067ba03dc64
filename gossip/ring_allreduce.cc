#include "gossip/ring_allreduce.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>

#include <poll.h>

#include "gossip/checksum.h"

namespace starling::gossip {
namespace {

// Counts, per segment, the payloads the transport still holds (zero-copy sends keep pointing
// into the caller's buffers until ZeroMQ has written them). A segment is only overwritten, and
// run() only returns, once its count is back to zero.
class InFlight {
 public:
  explicit InFlight(std::size_t segments) : count_(segments, 0) {}

  // A reference that keeps `segment` marked in flight until the transport drops it.
  std::shared_ptr<const void> hold(std::size_t segment, const std::shared_ptr<InFlight>& self) {
    {
      std::lock_guard lock(mutex_);
      ++count_[segment];
    }
    return std::shared_ptr<const void>(nullptr, [self, segment](const void*) {
      {
        std::lock_guard lock(self->mutex_);
        --self->count_[segment];
      }
      self->released_.notify_all();
    });
  }

  bool wait(std::size_t segment, Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    return released_.wait_until(lock, deadline, [&] { return count_[segment] == 0; });
  }

  bool wait_all(Clock::time_point deadline) {
    std::unique_lock lock(mutex_);
    return released_.wait_until(lock, deadline, [&] {
      return std::all_of(count_.begin(), count_.end(), [](int c) { return c == 0; });
    });
  }

 private:
  std::mutex mutex_;
  std::condition_variable released_;
  std::vector<int> count_;
};

std::size_t auto_chunk_elements(std::size_t length, std::size_t members) {
  // Four chunks per segment keep a large ring pipelined; chunks of 256 KiB to 1 MiB keep the
  // per-message cost (a hop through three threads on each side) small against the copying,
  // and the mailbox's buffering bounded. Measured on 4 ranks, 1 MiB: 64 KiB chunks 2.0 ms,
  // 256 KiB 1.6 ms; 16 MiB: 1 MiB and 4 MiB chunks alike.
  const std::size_t segment = (length + members - 1) / members;
  const std::size_t lo = 64 * 1024, hi = 256 * 1024;  // floats
  return std::clamp(segment / 4, lo, hi);
}

// Where a member's segments and chunks lie and who its neighbours are, the same whichever
// way chunks travel. Segment k is [begin[k], begin[k + 1]); reduce-scatter step s (< n - 1)
// receives segment p - s - 1, all-gather step n - 1 + a receives segment p - a (mod n).
struct RingLayout {
  std::size_t n = 0, p = 0, left = 0, right = 0, chunk = 0;
  std::vector<std::size_t> begin;

  std::size_t chunks_of(std::size_t segment) const {
    return (begin[segment + 1] - begin[segment] + chunk - 1) / chunk;
  }
  std::pair<std::size_t, std::size_t> chunk_range(std::size_t segment, std::size_t c) const {
    const std::size_t lo = begin[segment] + c * chunk;
    return {lo, std::min(begin[segment + 1], lo + chunk)};
  }
  std::size_t received_segment(std::size_t step) const {
    return step + 1 < n ? (p + 2 * n - step - 1) % n : (p + n - (step - (n - 1))) % n;
  }
};

RingLayout make_layout(const std::vector<std::size_t>& members, std::size_t p, std::size_t length,
                       std::size_t chunk_bytes) {
  RingLayout ring;
  ring.n = members.size();
  ring.p = p;
  ring.left = members[(p + ring.n - 1) % ring.n];
  ring.right = members[(p + 1) % ring.n];
  ring.chunk = chunk_bytes > 0 ? std::max<std::size_t>(1, chunk_bytes / sizeof(float))
                               : auto_chunk_elements(length, ring.n);
  ring.begin.resize(ring.n + 1);
  for (std::size_t k = 0; k <= ring.n; ++k) ring.begin[k] = length * k / ring.n;
  return ring;
}

}  // namespace

std::uint64_t RingAllreduce::membership_fingerprint(const std::vector<std::size_t>& members,
                                                    std::uint64_t kind) {
  std::uint64_t h = 1469598103934665603ull;  // FNV-1a over the kind and the members, in order
  auto mix = [&h](std::uint64_t value) {
    for (int b = 0; b < 8; ++b) {
      h ^= (value >> (8 * b)) & 0xFF;
      h *= 1099511628211ull;
    }
  };
  mix(kind);
  for (std::size_t m : members) mix(m);
  return h;
}

RingAllreduce::RingAllreduce(Transport& transport, AllreduceOptions options,
                             std::uint64_t first_tag)
    : transport_(transport), options_(options) {
  expect(first_tag);
}

void RingAllreduce::expect(std::uint64_t tag) {
  open_window(transport_, tag, std::max(tag + kWindow, keep_open_through_));
}

void RingAllreduce::keep_open_through(std::uint64_t last_tag) {
  keep_open_through_ = last_tag;
}

void RingAllreduce::open_window(Transport& transport, std::uint64_t tag) {
  open_window(transport, tag, tag + kWindow);
}

void RingAllreduce::open_window(Transport& transport, std::uint64_t tag, std::uint64_t last_tag) {
  transport.mailbox().set_window(MessageType::allreduce_chunk, tag, last_tag);
  transport.mailbox().set_window(MessageType::allreduce_abort, tag, last_tag);
}

void RingAllreduce::abort(std::uint64_t tag) {
  OutgoingMessage message;
  message.type = MessageType::allreduce_abort;
  message.tag = tag;
  for (std::size_t peer = 0; peer < transport_.size(); ++peer) {
    if (peer != transport_.self()) transport_.send(peer, message);
  }
}

void RingAllreduce::abort_members(std::uint64_t tag, const std::vector<std::size_t>& members) {
  OutgoingMessage message;
  message.type = MessageType::allreduce_abort;
  message.tag = tag;
  for (std::size_t m : members) {
    if (m != transport_.self()) transport_.send(m, message);
  }
}

std::string RingAllreduce::could_not_send(std::size_t peer, std::uint64_t tag) const {
  return "could not send to " + transport_.peers().id(peer) + " (collective " +
         std::to_string(tag) + "): no connection to it, or its queue is full";
}

bool RingAllreduce::await_connection(std::uint64_t tag, std::size_t peer,
                                     Clock::time_point deadline,
                                     const std::function<void(std::string)>& fail) {
  PeerTable& peers = transport_.peers();
  if (!peers.connection_lost(peer)) return true;
  const auto status = transport_.mailbox().wait_unless_aborted(
      [&] { return !peers.connection_lost(peer); }, MessageType::allreduce_abort, tag, deadline,
      [&] { return !peers.is_active(peer) || (options_.stop && options_.stop()); });
  const std::string& id = peers.id(peer);
  switch (status) {
    case Mailbox::TakeStatus::taken: return true;
    case Mailbox::TakeStatus::aborted:
      fail("another member aborted collective " + std::to_string(tag));
      break;
    case Mailbox::TakeStatus::timed_out:
      fail("timed out waiting for the connection to " + id + " (collective " +
           std::to_string(tag) + ")");
      break;
    case Mailbox::TakeStatus::foreign_sender:  // not returned by wait_unless_aborted
    case Mailbox::TakeStatus::gave_up:
      fail(options_.stop && options_.stop()
               ? "stopped while waiting for the connection to " + id + " (collective " +
                     std::to_string(tag) + ")"
               : id + " went silent before collective " + std::to_string(tag));
      break;
  }
  return false;
}

AllreduceResult RingAllreduce::run(std::uint64_t tag, const std::vector<std::size_t>& members,
                                   std::span<const float> in, std::span<float> out,
                                   std::uint64_t kind) {
  const auto start = Clock::now();
  const auto deadline = start + options_.timeout;
  AllreduceResult result;
  if (in.size() != out.size()) throw std::invalid_argument("RingAllreduce: in and out differ in size");
  const std::size_t self = transport_.self();
  const std::size_t n = members.size();
  auto me = std::find(members.begin(), members.end(), self);
  if (me == members.end()) throw std::invalid_argument("RingAllreduce: this node is not a member");
  const std::size_t p = static_cast<std::size_t>(me - members.begin());
  if (n == 1) {
    if (out.data() != in.data()) std::memcpy(out.data(), in.data(), in.size_bytes());
    result.ok = true;
    return result;
  }
  if (RingLinks* links = transport_.ring_links()) return run_on_links(*links, tag, members, in, out, kind);

  const RingLayout ring = make_layout(members, p, in.size(), options_.chunk_bytes);
  const std::size_t left = ring.left;
  const std::size_t right = ring.right;
  const std::uint64_t fingerprint = membership_fingerprint(members, kind);
  Mailbox& mailbox = transport_.mailbox();
  PeerTable& peers = transport_.peers();
  // Chunks of this collective, and early ones of later ones, are accepted; older ones are late.
  expect(tag);
  // A chunk the transport cannot queue (no connection to `right`, or its queue full) is lost,
  // and `right` would wait for it until the deadline: that is a failed collective, known here
  // at once. The count is read before the first send; any failure after it fails this run.
  const std::uint64_t send_failures_before = peers.send_failures(right);
  auto send_failed = [&] { return peers.send_failures(right) != send_failures_before; };

  auto in_flight = std::make_shared<InFlight>(n);
  auto send = [&](std::uint64_t step, std::size_t c, std::size_t segment,
                  std::span<const float> data) {
    OutgoingMessage m;
    m.type = MessageType::allreduce_chunk;
    m.tag = tag;
    m.aux0 = (step << 32) | c;
    m.aux1 = fingerprint;
    m.payload = make_payload(data, in_flight->hold(segment, in_flight));
    transport_.send(right, std::move(m));
    result.payload_bytes_sent += data.size_bytes();
  };
  auto fail = [&](std::string why) {
    result.ok = false;
    result.error = std::move(why);
    abort_members(tag, members);
  };
  auto receive = [&](std::uint64_t step, std::size_t c,
                     std::size_t expected) -> std::optional<ReceivedMessage> {
    std::optional<ReceivedMessage> message;
    auto status = mailbox.take_unless_aborted(
        MailboxKey{MessageType::allreduce_chunk, tag, static_cast<std::uint32_t>(left),
                   (step << 32) | c},
        MessageType::allreduce_abort, tag, deadline,
        [&] { return !peers.is_active(left) || send_failed() || (options_.stop && options_.stop()); },
        message);
    const std::string& from = peers.id(left);
    switch (status) {
      case Mailbox::TakeStatus::taken: break;
      case Mailbox::TakeStatus::aborted:
        fail("another member aborted collective " + std::to_string(tag));
        return std::nullopt;
      case Mailbox::TakeStatus::foreign_sender:
        fail("a member other than " + from + " sent chunks of collective " + std::to_string(tag) +
             ": the members disagree on the ring");
        return std::nullopt;
      case Mailbox::TakeStatus::timed_out:
        fail("timed out waiting for " + from + " (collective " + std::to_string(tag) + ", step " +
             std::to_string(step) + ")");
        return std::nullopt;
      case Mailbox::TakeStatus::gave_up:
        if (options_.stop && options_.stop()) {
          fail("stopped while waiting for " + from + " (collective " + std::to_string(tag) + ")");
        } else if (send_failed()) {
          fail(could_not_send(right, tag));
        } else {
          fail(from + " went silent during collective " + std::to_string(tag));
        }
        return std::nullopt;
    }
    if (message->header().aux1 != fingerprint) {
      fail(from + " runs collective " + std::to_string(tag) + " with another membership");
      return std::nullopt;
    }
    if (message->floats().size() != expected) {
      fail(from + " sent a chunk of " + std::to_string(message->floats().size()) +
           " values where " + std::to_string(expected) + " were expected");
      return std::nullopt;
    }
    return message;
  };

  // A member that just came back is heard from (its connection to us is up) before our
  // connection to it is made again, and sends meanwhile are not queued but lost (IMMEDIATE):
  // wait for that connection before the first send. (A connection that was never lost, as at
  // start-up when wait_for_peers has seen round trips, needs no wait.)
  bool ok = await_connection(tag, right, deadline, fail);

  const float scale = options_.mean ? 1.0f / static_cast<float>(n) : 1.0f;
  // Reduce-scatter. Step s sends segment p - s and receives segment p - s - 1 (mod n).
  for (std::size_t c = 0; ok && c < ring.chunks_of(p); ++c) {
    auto [lo, hi] = ring.chunk_range(p, c);
    send(0, c, p, in.subspan(lo, hi - lo));
  }
  for (std::size_t s = 0; ok && s + 1 < n; ++s) {
    const std::size_t g = ring.received_segment(s);
    const bool owned = s + 2 == n;  // the last step completes this node's own segment
    for (std::size_t c = 0; ok && c < ring.chunks_of(g); ++c) {
      auto [lo, hi] = ring.chunk_range(g, c);
      auto message = receive(s, c, hi - lo);
      if (!message) {
        ok = false;
        break;
      }
      const float* theirs = message->floats().data();
      const float* mine = in.data() + lo;
      float* o = out.data() + lo;
      if (owned && options_.mean) {
        for (std::size_t k = 0; k < hi - lo; ++k) o[k] = (mine[k] + theirs[k]) * scale;
      } else {
        for (std::size_t k = 0; k < hi - lo; ++k) o[k] = mine[k] + theirs[k];
      }
      // Forward at once: the next step (or the first all-gather step) sends this very chunk.
      send(s + 1, c, g, std::span<const float>(o, hi - lo));
    }
  }
  // All-gather. Step a (numbered n - 1 + a on the wire) receives segment p - a (mod n).
  for (std::size_t a = 0; ok && a + 1 < n; ++a) {
    const std::size_t g = ring.received_segment(n - 1 + a);
    if (!in_flight->wait(g, deadline)) {
      fail("a send of this node's did not complete in time (collective " + std::to_string(tag) + ")");
      ok = false;
      break;
    }
    for (std::size_t c = 0; ok && c < ring.chunks_of(g); ++c) {
      auto [lo, hi] = ring.chunk_range(g, c);
      auto message = receive(n - 1 + a, c, hi - lo);
      if (!message) {
        ok = false;
        break;
      }
      std::memcpy(out.data() + lo, message->floats().data(), (hi - lo) * sizeof(float));
      if (a + 2 < n) send(n + a, c, g, std::span<const float>(out.data() + lo, hi - lo));
    }
  }

  // The caller may reuse its buffers once run() returns: wait until ZeroMQ has let go of every
  // payload. A connection to a vanished peer is dropped by ZMTP heartbeats after
  // release_bound() at most, which frees what was queued for it, so this wait is bounded;
  // past the margin an invariant broke.
  const auto margin = std::max<Clock::duration>(std::chrono::seconds(30),
                                                transport_.release_bound() + std::chrono::seconds(5));
  if (!in_flight->wait_all(std::max(deadline, Clock::now()) + margin)) {
    spdlog::critical("ring allreduce {}: the transport still holds payloads {} s after the "
                     "deadline; the caller's buffers cannot be released safely",
                     tag, std::chrono::duration_cast<std::chrono::seconds>(margin).count());
    std::terminate();
  }
  // A chunk lost after this node's last receive leaves `right` waiting: fail here too, so the
  // abort reaches the members that wait (the caller's `in` is untouched when out is another
  // buffer, as every caller's is).
  if (ok && send_failed()) {
    fail(could_not_send(right, tag));
    ok = false;
  }
  expect(tag + 1);
  result.ok = ok;
  result.elapsed = Clock::now() - start;
  return result;
}

AllreduceResult RingAllreduce::run_on_links(RingLinks& links, std::uint64_t tag,
                                            const std::vector<std::size_t>& members,
                                            std::span<const float> in, std::span<float> out,
                                            std::uint64_t kind) {
  std::lock_guard one_collective_at_a_time(links.mutex());
  const auto start = Clock::now();
  const auto deadline = start + options_.timeout;
  AllreduceResult result;
  const std::size_t self = transport_.self();
  const std::size_t n = members.size();
  const std::size_t p =
      static_cast<std::size_t>(std::find(members.begin(), members.end(), self) - members.begin());
  const std::size_t length = in.size();
  const RingLayout ring = make_layout(members, p, length, options_.chunk_bytes);
  const std::size_t chunk = ring.chunk;
  const std::size_t left = ring.left;
  const std::size_t right = ring.right;
  const std::uint64_t fingerprint = membership_fingerprint(members, kind);
  Mailbox& mailbox = transport_.mailbox();
  PeerTable& peers = transport_.peers();
  expect(tag);  // aborts of this collective are buffered
  partial_.resize(length);
  scratch_.resize(std::min(chunk, length));

  auto fail = [&](std::string why) {
    result.ok = false;
    result.error = std::move(why);
    abort_members(tag, members);
  };
  // What ends a wait early, in the order the errors name it (strings only when one does).
  // `awaited`: the neighbour this node waits for (left while chunks are due, right while it
  // still has chunks to write), named if the deadline passes.
  auto given_up = [&](std::size_t awaited) -> std::optional<std::string> {
    if (mailbox.contains(MessageType::allreduce_abort, tag)) {
      return "another member aborted collective " + std::to_string(tag);
    }
    if (options_.stop && options_.stop()) {
      return "stopped while waiting for the ring (collective " + std::to_string(tag) + ")";
    }
    for (std::size_t neighbour : {left, right}) {
      if (!peers.is_active(neighbour)) {
        return peers.id(neighbour) + " went silent during collective " + std::to_string(tag);
      }
    }
    if (Clock::now() >= deadline) {
      return "timed out waiting for " + peers.id(awaited) + " (collective " + std::to_string(tag) + ")";
    }
    return std::nullopt;
  };
  // Waits for any of the links' sockets (and new connections), at most 10 ms: aborts, stops
  // and liveness arrive elsewhere and are checked between waits.
  // New connections and hellos are served only when they are there (or a hello is pending and
  // may have timed out), not on every wake-up of a busy collective.
  auto wait = [&](const OutboundLink* to_right, bool want_left) {
    std::vector<pollfd> fds;
    fds.push_back({links.listener_fd(), POLLIN, 0});
    for (int fd : links.unidentified_fds()) fds.push_back({fd, POLLIN, 0});
    const std::size_t connection_fds = fds.size();
    if (want_left) {
      if (InboundLink* from_left = links.inbound(left)) fds.push_back({from_left->fd(), POLLIN, 0});
    }
    if (to_right && to_right->wants_write()) fds.push_back({to_right->fd(), POLLOUT, 0});
    const auto left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    poll(fds.data(), fds.size(), static_cast<int>(std::clamp<long long>(left_ms, 0, 10)));
    if (connection_fds > 1 ||
        std::any_of(fds.begin(), fds.begin() + connection_fds, [](const pollfd& polled) { return polled.revents != 0; })) {
      links.service_listener();
    }
  };

  // The link to the right neighbour, connected and greeted before any chunk is queued: a
  // neighbour that is just coming back may refuse connections for a moment (its port is then
  // still the old one), which is retried until the deadline, not a failure.
  OutboundLink* to_right = nullptr;
  std::string last_connect_error;
  while (true) {
    if (auto why = given_up(right)) {
      if (!last_connect_error.empty() && Clock::now() >= deadline) {
        *why = "could not connect the ring link to " + peers.id(right) + ": " + last_connect_error;
      }
      fail(*why);
      links.drop_outbound(right);
      expect(tag + 1);
      result.elapsed = Clock::now() - start;
      return result;
    }
    std::string why;
    to_right = links.outbound(right, &why);
    if (to_right && !to_right->flush()) {
      last_connect_error = to_right->error();
      links.drop_outbound(right);
      to_right = nullptr;
    } else if (!why.empty()) {
      last_connect_error = why;
    }
    if (to_right && !to_right->connecting() && to_right->idle()) break;
    wait(to_right, false);
  }

  const float scale = options_.mean ? 1.0f / static_cast<float>(n) : 1.0f;
  auto queue = [&](std::uint64_t step, std::size_t c, const float* data, std::size_t count,
                   std::optional<std::uint32_t> crc) {
    const auto bytes = std::as_bytes(std::span<const float>(data, count));
    Header h;
    h.type = MessageType::allreduce_chunk;
    h.sender = static_cast<std::uint32_t>(self);
    h.incarnation = links.incarnation();
    h.fingerprint = links.fingerprint();
    h.tag = tag;
    h.aux0 = (step << 32) | c;
    h.aux1 = fingerprint;
    h.payload_bytes = bytes.size();
    h.payload_crc = crc ? *crc : payload_checksum(bytes);
    to_right->queue(h, bytes);
    peers.on_sent(right, kHeaderSize + bytes.size());
    result.payload_bytes_sent += bytes.size();
  };

  // Reduce-scatter step s (< n - 1) receives segment p - s - 1 and adds it to this node's;
  // all-gather step n - 1 + a receives segment p - a, reduced, into `out`. Wire steps are
  // numbered as on the ZeroMQ path.
  const std::size_t steps = 2 * (n - 1);
  std::size_t step = 0, c = 0;
  for (std::size_t k = 0; k < ring.chunks_of(p); ++k) {
    auto [lo, hi] = ring.chunk_range(p, k);
    queue(0, k, in.data() + lo, hi - lo, std::nullopt);
  }
  // Segments shorter than the ring (length < n) have no chunks: nothing arrives for them.
  auto skip_empty_steps = [&] {
    while (step < steps && ring.chunks_of(ring.received_segment(step)) == 0) ++step;
  };
  skip_empty_steps();
  bool ok = true;
  while (ok && (step < steps || !to_right->idle())) {
    if (!to_right->flush()) {
      fail("lost the ring link to " + peers.id(right) + " (collective " + std::to_string(tag) +
           "): " + to_right->error());
      ok = false;
      break;
    }
    InboundLink* from_left = step < steps ? links.inbound(left) : nullptr;
    while (ok && from_left && step < steps) {
      auto broken = [&](const std::string& what) {
        fail("the ring link from " + peers.id(left) + " (collective " + std::to_string(tag) +
             "): " + what);
        links.drop_inbound(left);
        ok = false;
      };
      InboundLink::Read status = from_left->read_header(links.context_for(left), links.max_payload_bytes());
      if (status == InboundLink::Read::failed) {
        if (from_left->closed_between_frames() && !peers.connection_lost(left)) {
          // Left gave up on an earlier collective and connects again for this one: wait for
          // the new link (an abort, left's silence or the deadline ends the wait).
          links.drop_inbound(left);
          break;
        }
        broken(from_left->error());
        break;
      }
      if (status == InboundLink::Read::more) break;
      const Header& h = from_left->header();
      if (h.type != MessageType::allreduce_chunk) {
        // A gossip round's payload that left sent before this collective: filed in the
        // mailbox for its round, as the training thread would between steps.
        status = links.take_gossip_frame(left, *from_left);
        if (status == InboundLink::Read::failed) broken(from_left->error());
        if (status != InboundLink::Read::ready) break;
        continue;
      }
      if (h.tag < tag) {  // the rest of a collective this node gave up on
        status = from_left->skip_body();
        if (status == InboundLink::Read::failed) broken(from_left->error());
        if (status != InboundLink::Read::ready) break;
        from_left->next_frame();
        continue;
      }
      if (h.tag > tag) {
        // Left the header where it is: it opens that collective when this node gets there.
        fail(peers.id(left) + " is already in collective " + std::to_string(h.tag) +
             " while this node runs " + std::to_string(tag));
        ok = false;
        break;
      }
      if (h.aux1 != fingerprint) {
        fail(peers.id(left) + " runs collective " + std::to_string(tag) + " with another membership");
        ok = false;
        break;
      }
      const bool reducing = step + 1 < n;
      const std::size_t g = ring.received_segment(step);
      auto [lo, hi] = ring.chunk_range(g, c);
      if (h.aux0 != ((static_cast<std::uint64_t>(step) << 32) | c) ||
          h.payload_bytes != (hi - lo) * sizeof(float)) {
        broken("sent step " + std::to_string(h.aux0 >> 32) + " chunk " +
               std::to_string(h.aux0 & 0xFFFFFFFFu) + " of " + std::to_string(h.payload_bytes) +
               " bytes where step " + std::to_string(step) + " chunk " + std::to_string(c) +
               " of " + std::to_string((hi - lo) * sizeof(float)) + " bytes was due");
        break;
      }
      float* into = reducing ? scratch_.data() : out.data() + lo;
      status = from_left->read_body(reinterpret_cast<std::byte*>(into));
      if (status == InboundLink::Read::failed) broken(from_left->error());
      if (status != InboundLink::Read::ready) break;
      const auto received = std::as_bytes(std::span<const float>(into, hi - lo));
      const PayloadScan scan = scan_payload(received);
      if (scan.checksum != h.payload_crc || !scan.all_finite) {
        const RejectReason reason =
            scan.checksum != h.payload_crc ? RejectReason::checksum_mismatch : RejectReason::non_finite;
        peers.on_rejected(left, reason);
        broken(std::string("a chunk was refused: ") + std::string(to_string(reason)));
        break;
      }
      // Incarnation 0: the peer table keeps what heartbeats said (max), this only counts.
      peers.on_received(left, kHeaderSize + received.size(), 0, Clock::now());
      const std::uint32_t crc = h.payload_crc;
      from_left->next_frame();
      if (reducing) {
        const bool owned = step + 2 == n;  // the last step completes this node's own segment
        float* o = (owned ? out.data() : partial_.data()) + lo;
        const float* mine = in.data() + lo;
        if (owned && options_.mean) {
          for (std::size_t k = 0; k < hi - lo; ++k) o[k] = (mine[k] + into[k]) * scale;
        } else {
          for (std::size_t k = 0; k < hi - lo; ++k) o[k] = mine[k] + into[k];
        }
        queue(step + 1, c, o, hi - lo, std::nullopt);
      } else if (step + 1 < steps) {
        queue(step + 1, c, into, hi - lo, crc);  // forwarded unchanged: its checksum holds
      }
      if (++c == ring.chunks_of(g)) {
        c = 0;
        ++step;
        skip_empty_steps();
      }
      if (!to_right->flush()) break;  // reported at the top of the loop
    }
    if (!ok) break;
    if (step < steps || !to_right->idle()) {
      if (auto why = given_up(step < steps ? left : right)) {
        fail(*why);
        ok = false;
        break;
      }
      wait(to_right, step < steps);
    }
  }
  // Frames still queued point into the caller's buffers and would be sent after run()
  // returned: the link goes, and with it the framing that a half-written frame broke.
  if (!ok && !to_right->idle()) links.drop_outbound(right);
  expect(tag + 1);
  result.ok = ok;
  result.elapsed = Clock::now() - start;
  return result;
}

}  // namespace starling::gossip
