#include "gossip/ring_links.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <thread>

#include "topology/cluster_file.h"

namespace starling::gossip {
namespace {

std::string errno_text(int error) { return std::strerror(error); }

// Every socket here is made nonblocking and close-on-exec by socket() or accept4() itself.
void set_nodelay(int fd) {
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Reads from a nonblocking `fd` into [into + got, into + want) until it is full (`done`) or
// the socket has nothing more now (`more`); `closed` at end of stream, `failed` on an error
// (errno says which). `got` counts what has arrived, across calls.
enum class Fill { done, more, closed, failed };
Fill fill_from(int fd, std::byte* into, std::size_t want, std::size_t& got) {
  while (got < want) {
    const ssize_t r = recv(fd, into + got, want - got, 0);
    if (r > 0) {
      got += static_cast<std::size_t>(r);
    } else if (r == 0) {
      return Fill::closed;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      return Fill::more;
    } else {
      return Fill::failed;
    }
  }
  return Fill::done;
}

// Resolves `host` (a literal address or a name) for a TCP socket; nullopt with `why` set.
std::optional<sockaddr_storage> resolve(const std::string& bracketed_or_not, std::uint16_t port,
                                        socklen_t& length, std::string& why) {
  const std::string host = topology::without_brackets(bracketed_or_not);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0 || found == nullptr) {
    why = "cannot resolve host '" + host + "': " + gai_strerror(rc);
    return std::nullopt;
  }
  sockaddr_storage address{};
  std::memcpy(&address, found->ai_addr, found->ai_addrlen);
  length = found->ai_addrlen;
  freeaddrinfo(found);
  return address;
}

bool is_abstract(const std::string& path) { return !path.empty() && path.front() == '@'; }

// The address of a Unix-domain socket at `path`; "@name" is `name` in Linux's abstract
// namespace (no file). nullopt with `why` set if the path does not fit a socket address.
std::optional<sockaddr_storage> unix_address(const std::string& path, socklen_t& length,
                                             std::string& why) {
  sockaddr_un address{};
  if (path.empty() || path.size() >= sizeof address.sun_path) {
    why = "socket path '" + path + "' is empty or longer than " +
          std::to_string(sizeof address.sun_path - 1) + " bytes";
    return std::nullopt;
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.data(), path.size());
  const bool abstract = is_abstract(path);
  if (abstract) address.sun_path[0] = '\0';
  // An abstract name is exactly its bytes; a path is NUL-terminated (zeroed above).
  length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (abstract ? 0 : 1));
  sockaddr_storage storage{};
  std::memcpy(&storage, &address, sizeof address);
  return storage;
}

}  // namespace

// ---------------------------------------------------------------------------- OutboundLink

OutboundLink::OutboundLink(int fd, std::uint16_t port, std::uint64_t incarnation)
    : fd_(fd), port_(port), incarnation_(incarnation) {}

OutboundLink::~OutboundLink() {
  if (fd_ >= 0) close(fd_);
}

void OutboundLink::queue(const Header& header, std::span<const std::byte> payload,
                         Clock::time_point not_before) {
  frames_.push_back(Frame{encode_header(header), payload, not_before});
}

std::size_t OutboundLink::held() const {
  const auto now = Clock::now();
  return static_cast<std::size_t>(std::count_if(
      frames_.begin(), frames_.end(), [&](const Frame& f) { return f.not_before > now; }));
}

bool OutboundLink::wants_write() const {
  if (frames_.empty()) return false;
  return written_ > 0 || frames_.front().not_before <= Clock::now();
}

bool OutboundLink::flush() {
  if (!error_.empty()) return false;
  if (connecting_) {
    pollfd ready{fd_, POLLOUT, 0};
    if (poll(&ready, 1, 0) <= 0) return true;  // the handshake is still under way
    int error = 0;
    socklen_t length = sizeof error;
    getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      error_ = errno_text(error);
      return false;
    }
    connecting_ = false;
  }
  const auto now = Clock::now();
  while (!frames_.empty()) {
    Frame& frame = frames_.front();
    if (written_ == 0 && frame.not_before > now) return true;  // held back by a test hook
    iovec parts[2];
    int count = 0;
    if (written_ < kHeaderSize) {
      parts[count++] = {frame.head.data() + written_, kHeaderSize - written_};
      if (!frame.payload.empty()) {
        parts[count++] = {const_cast<std::byte*>(frame.payload.data()), frame.payload.size()};
      }
    } else {
      const std::size_t body = written_ - kHeaderSize;
      parts[count++] = {const_cast<std::byte*>(frame.payload.data()) + body,
                        frame.payload.size() - body};
    }
    msghdr message{};
    message.msg_iov = parts;
    message.msg_iovlen = static_cast<std::size_t>(count);
    const ssize_t sent = sendmsg(fd_, &message, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
      error_ = errno_text(errno);
      return false;
    }
    written_ += static_cast<std::size_t>(sent);
    if (written_ < kHeaderSize + frame.payload.size()) continue;
    frames_.pop_front();
    written_ = 0;
  }
  return true;
}

// ----------------------------------------------------------------------------- InboundLink

InboundLink::InboundLink(int fd, std::uint64_t incarnation) : fd_(fd), incarnation_(incarnation) {}

InboundLink::~InboundLink() {
  if (fd_ >= 0) close(fd_);
}

InboundLink::Read InboundLink::fill(std::byte* into, std::size_t want, std::size_t& got) {
  switch (fill_from(fd_, into, want, got)) {
    case Fill::done: return Read::ready;
    case Fill::more: return Read::more;
    case Fill::closed:
      closed_ = true;
      error_ = "the connection was closed";
      return Read::failed;
    case Fill::failed: break;
  }
  error_ = errno_text(errno);
  return Read::failed;
}

InboundLink::Read InboundLink::read_header(const DecodeContext& context, std::size_t max_payload) {
  if (header_ready_) return Read::ready;
  const Read status = fill(head_.data(), kHeaderSize, header_got_);
  if (status != Read::ready) return status;
  Decoded decoded = decode_header(head_, context);
  if (decoded.error) {
    error_ = std::string("a frame header was refused: ") + std::string(to_string(*decoded.error));
    return Read::failed;
  }
  const Header& h = decoded.header;
  if (h.type != MessageType::allreduce_chunk && !is_gossip_payload(h.type)) {
    error_ = "a " + std::string(to_string(h.type)) +
             " frame where allreduce chunks and gossip payloads belong";
    return Read::failed;
  }
  if (h.incarnation != incarnation_) {
    error_ = "a frame of another incarnation than the link's hello";
    return Read::failed;
  }
  if (!payload_length_valid(h.type, h.payload_bytes) ||
      (max_payload > 0 && h.payload_bytes > max_payload)) {
    error_ = "a frame announcing " + std::to_string(h.payload_bytes) + " payload bytes";
    return Read::failed;
  }
  header_ = h;
  header_ready_ = true;
  return Read::ready;
}

InboundLink::Read InboundLink::read_body(std::byte* into) {
  return fill(into, header_.payload_bytes, body_got_);
}

InboundLink::Read InboundLink::read_owned_body() {
  if (!owned_body_) owned_body_ = std::shared_ptr<std::byte[]>(new std::byte[header_.payload_bytes]);
  return fill(owned_body_.get(), header_.payload_bytes, body_got_);
}

InboundLink::Read InboundLink::skip_body() {
  constexpr std::size_t kDiscard = 64 * 1024;
  if (discard_.empty()) discard_.resize(kDiscard);
  while (body_got_ < header_.payload_bytes) {
    std::size_t got = 0;
    const std::size_t want = std::min(kDiscard, header_.payload_bytes - body_got_);
    const Read status = fill(discard_.data(), want, got);
    body_got_ += got;
    if (status != Read::ready) return status;
  }
  return Read::ready;
}

void InboundLink::next_frame() {
  header_got_ = 0;
  header_ready_ = false;
  body_got_ = 0;
}

// -------------------------------------------------------------------------------- RingLinks

RingLinks::RingLinks(RingLinksOptions options, PeerTable& peers, InboundPipeline& inbound)
    : options_(std::move(options)),
      peers_(peers),
      inbound_pipeline_(inbound),
      // Another stream than the transport's, which draws from faults.seed itself.
      fault_rng_(options_.faults.seed ^ 0x9e3779b97f4a7c15ULL) {
  if (unix_sockets()) {
    if (!options_.hosts.empty()) throw std::invalid_argument("RingLinks: hosts and socket_paths both set");
    listen_on_path(options_.socket_paths.at(options_.self));
    return;
  }
  const std::string& host = options_.hosts.at(options_.self);
  std::string why;
  socklen_t length = 0;
  auto address = resolve(host, options_.listen_port, length, why);
  if (!address) throw std::runtime_error("ring link: " + why);
  listener_ = socket(address->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listener_ < 0) throw std::runtime_error("ring link: socket: " + errno_text(errno));
  // A fixed port may still be held by this node's previous process's connections.
  const int one = 1;
  setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(listener_, reinterpret_cast<sockaddr*>(&*address), length) != 0 ||
      listen(listener_, static_cast<int>(kMaxUnidentified)) != 0) {
    const std::string error = errno_text(errno);
    close(listener_);
    throw std::runtime_error("ring link: cannot listen on " + host + " port " +
                             (options_.listen_port ? std::to_string(options_.listen_port)
                                                   : std::string("(any)")) +
                             ": " + error);
  }
  sockaddr_storage bound{};
  socklen_t bound_length = sizeof bound;
  getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &bound_length);
  port_ = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
}

void RingLinks::listen_on_path(const std::string& path) {
  std::string why;
  socklen_t length = 0;
  auto address = unix_address(path, length, why);
  if (!address) throw std::runtime_error("ring link: " + why);
  listener_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listener_ < 0) throw std::runtime_error("ring link: socket: " + errno_text(errno));
  // A socket file left by this node's crashed process would make bind fail. Only this node
  // binds this path (its endpoint's, which ZeroMQ bound a moment ago, replacing a stale file
  // the same way), so what is there is stale.
  if (!is_abstract(path)) {
    struct stat existing {};
    if (lstat(path.c_str(), &existing) == 0 && S_ISSOCK(existing.st_mode)) unlink(path.c_str());
  }
  if (bind(listener_, reinterpret_cast<sockaddr*>(&*address), length) != 0 ||
      listen(listener_, static_cast<int>(kMaxUnidentified)) != 0) {
    const std::string error = errno_text(errno);
    close(listener_);
    listener_ = -1;
    throw std::runtime_error("ring link: cannot listen on socket " + path + ": " + error);
  }
  if (!is_abstract(path)) {
    struct stat bound {};
    if (stat(path.c_str(), &bound) == 0) {
      bound_file_ = std::pair<std::uint64_t, std::uint64_t>(bound.st_dev, bound.st_ino);
    }
  }
  port_ = 1;  // announced in acks: "listening"; the peers know the path from the cluster file
}

std::string RingLinks::where() const {
  return unix_sockets() ? "socket " + socket_path() : "port " + std::to_string(port_);
}

RingLinks::~RingLinks() {
  for (auto& pending : unidentified_) close(pending.fd);
  if (listener_ >= 0) close(listener_);
  if (bound_file_) {
    const std::string path = socket_path();
    struct stat now {};
    if (stat(path.c_str(), &now) == 0 && now.st_dev == bound_file_->first &&
        now.st_ino == bound_file_->second) {
      unlink(path.c_str());
    }
  }
}

DecodeContext RingLinks::context_for(std::size_t sender) const {
  return DecodeContext{static_cast<std::uint32_t>(nodes()), options_.fingerprint,
                       static_cast<std::uint32_t>(sender)};
}

int RingLinks::listener_fd() const {
  return std::chrono::steady_clock::now() < accept_paused_until_ ? -1 : listener_;
}

std::vector<int> RingLinks::unidentified_fds() const {
  std::vector<int> fds;
  for (const auto& pending : unidentified_) fds.push_back(pending.fd);
  return fds;
}

void RingLinks::refuse(const Unidentified& pending, std::optional<std::size_t> sender,
                       RejectReason reason, const std::string& detail) {
  const bool first = sender ? peers_.on_rejected(*sender, reason) : peers_.on_rejected_unknown(reason);
  if (first) {
    spdlog::warn("ring link: refused a connection from {}: {} (further refusals of this kind "
                 "are only counted)",
                 sender ? peers_.id(*sender) : std::string("an unknown sender"), detail);
  }
  close(pending.fd);
}

void RingLinks::service_listener() {
  const auto now = std::chrono::steady_clock::now();
  while (now >= accept_paused_until_) {
    const int fd = accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        spdlog::warn("ring link: cannot accept a connection: {}; trying again in 1 s",
                     errno_text(errno));
        accept_paused_until_ = now + std::chrono::seconds(1);
      }
      break;  // EAGAIN: none waiting; a connection aborted before accept: gone
    }
    set_nodelay(fd);
    if (unidentified_.size() >= kMaxUnidentified) {
      // A flood of silent connections must not starve real peers: the oldest goes.
      refuse(unidentified_.front(), std::nullopt, RejectReason::malformed_header,
             "too many connections without a hello");
      unidentified_.erase(unidentified_.begin());
    }
    unidentified_.push_back(Unidentified{fd, now});
  }
  for (auto it = unidentified_.begin(); it != unidentified_.end();) {
    Unidentified& pending = *it;
    const Fill hello = fill_from(pending.fd, pending.head.data(), kHeaderSize, pending.got);
    if (hello == Fill::closed || hello == Fill::failed) {
      close(pending.fd);  // gone before its hello: nothing to count
      it = unidentified_.erase(it);
      continue;
    }
    if (hello == Fill::more) {
      if (now - pending.since > kHelloTimeout) {
        refuse(pending, std::nullopt, RejectReason::malformed_header, "no hello within 5 s");
        it = unidentified_.erase(it);
      } else {
        ++it;
      }
      continue;
    }
    // The hello names its sender; check it against itself (the stream has no other identity).
    std::uint32_t claimed = 0;
    std::memcpy(&claimed, pending.head.data() + 8, sizeof claimed);
    Decoded decoded = decode_header(pending.head, context_for(claimed));
    const bool known = decoded.header_parsed && claimed < nodes() && claimed != options_.self;
    const std::optional<std::size_t> sender = known ? std::optional<std::size_t>(claimed) : std::nullopt;
    if (decoded.error) {
      if (*decoded.error == RejectReason::fingerprint_mismatch && sender) {
        peers_.on_fingerprint_mismatch(*sender);
      }
      refuse(pending, sender, *decoded.error,
             "its hello failed: " + std::string(to_string(*decoded.error)));
    } else if (!known) {
      refuse(pending, std::nullopt, RejectReason::unknown_sender, "its hello names no other node");
    } else if (decoded.header.type != MessageType::ring_hello || decoded.header.payload_bytes != 0) {
      refuse(pending, sender, RejectReason::unknown_type, "its first frame is not a ring hello");
    } else if (decoded.header.aux0 != options_.self) {
      refuse(pending, sender, RejectReason::not_a_neighbour,
             "its hello is meant for node " + std::to_string(decoded.header.aux0));
    } else {
      // The newest connection from a sender wins: the older one belongs to a collective that
      // gave up, or to the sender's previous process.
      auto previous = inbound_.find(claimed);
      if (previous == inbound_.end() || previous->second->incarnation() != decoded.header.incarnation) {
        latest_gossip_round_.erase(claimed);  // another process: its rounds start afresh
      }
      inbound_[claimed] = std::make_unique<InboundLink>(pending.fd, decoded.header.incarnation);
    }
    it = unidentified_.erase(it);
  }
}

InboundLink* RingLinks::inbound(std::size_t peer) {
  auto it = inbound_.find(peer);
  return it == inbound_.end() ? nullptr : it->second.get();
}

OutboundLink* RingLinks::outbound(std::size_t peer, std::string* why) {
  const std::uint16_t port = peers_.ring_port(peer);
  const std::uint64_t incarnation = peers_.incarnation(peer);
  auto it = outbound_.find(peer);
  if (it != outbound_.end()) {
    OutboundLink& link = *it->second;
    if (link.port() == port && link.peer_incarnation() == incarnation && link.error().empty()) {
      return &link;
    }
    outbound_.erase(it);  // the peer restarted, or the connection failed: connect again
  }
  if (port == 0) return nullptr;
  std::string error;
  socklen_t length = 0;
  auto address = unix_sockets() ? unix_address(options_.socket_paths.at(peer), length, error)
                                : resolve(options_.hosts.at(peer), port, length, error);
  if (!address) {
    if (why) *why = error;
    return nullptr;
  }
  const int fd = socket(address->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    if (why) *why = "socket: " + errno_text(errno);
    return nullptr;
  }
  if (!unix_sockets()) set_nodelay(fd);
  // A Unix-domain connect completes at once or fails (EAGAIN: the listener's backlog is
  // full; the caller tries again later); a TCP one may be under way.
  if (connect(fd, reinterpret_cast<sockaddr*>(&*address), length) != 0 && errno != EINPROGRESS) {
    if (why) {
      *why = (unix_sockets() ? "connect to " + options_.socket_paths.at(peer)
                             : "connect to port " + std::to_string(port)) +
             ": " + errno_text(errno);
    }
    close(fd);
    return nullptr;
  }
  auto link = std::make_unique<OutboundLink>(fd, port, incarnation);
  Header hello;
  hello.type = MessageType::ring_hello;
  hello.sender = static_cast<std::uint32_t>(options_.self);
  hello.incarnation = options_.incarnation;
  hello.fingerprint = options_.fingerprint;
  hello.aux0 = peer;
  link->queue(hello, {});
  OutboundLink* raw = link.get();
  outbound_[peer] = std::move(link);
  return raw;
}

void RingLinks::drop_inbound(std::size_t peer) { inbound_.erase(peer); }
void RingLinks::drop_outbound(std::size_t peer) {
  outbound_.erase(peer);
  gossip_owners_.erase(peer);  // the frames that pointed into them are gone with the link
}

bool RingLinks::send_gossip(std::size_t peer, const Header& header,
                            std::span<const std::byte> payload, std::shared_ptr<const void> owner) {
  OutboundLink* link = outbound(peer, nullptr);
  if (!link) return false;
  if (options_.faults.loses_next(fault_rng_)) {
    ++injected_drops_;
    return true;  // lost on the way, as far as anyone can tell
  }
  // Frames a test hook holds back are this node's doing, not a receiver that stopped
  // reading: they do not count toward the bound.
  if (link->queued() - link->held() >= kMaxQueuedGossip && !link->flush()) {
    drop_outbound(peer);
    return false;
  }
  if (link->queued() - link->held() >= kMaxQueuedGossip) {
    peers_.on_send_failure(peer);
    return true;
  }
  const auto delay = options_.faults.delay;
  link->queue(header, payload,
              delay.count() > 0 ? OutboundLink::Clock::now() + delay : OutboundLink::Clock::time_point{});
  gossip_owners_[peer].push_back(std::move(owner));
  peers_.on_sent(peer, kHeaderSize + payload.size());
  if (!link->flush()) {
    // The frame goes through ZeroMQ instead (had the link written all of it, the receiver
    // refuses the second copy as replayed); the next round's outbound() connects again.
    spdlog::debug("ring link to {}: {}", peers_.id(peer), link->error());
    drop_outbound(peer);
    return false;
  }
  // Written at once (as most are): the payload is the caller's again. Invariant: only a link
  // with frames left holds owners, so nothing but a non-idle link needs flush_gossip.
  if (link->idle()) gossip_owners_.erase(peer);
  return true;
}

void RingLinks::flush_gossip() {
  for (auto it = outbound_.begin(); it != outbound_.end();) {
    const std::size_t peer = it->first;
    OutboundLink& link = *it->second;
    ++it;  // drop_outbound below erases the current element
    if (!link.flush()) {
      spdlog::debug("ring link to {}: {}", peers_.id(peer), link.error());
      drop_outbound(peer);
    } else if (link.idle()) {
      gossip_owners_.erase(peer);
    }
  }
}

InboundLink::Read RingLinks::take_gossip_frame(std::size_t peer, InboundLink& link) {
  const InboundLink::Read status = link.read_owned_body();
  if (status != InboundLink::Read::ready) return status;
  const Header header = link.header();
  std::shared_ptr<std::byte[]> body = link.take_body();
  link.next_frame();
  // Frames on a link are in order: this round's came, whatever its body holds (not_coming in
  // gossip_averager.cc relies on it).
  auto [latest, first] = latest_gossip_round_.try_emplace(peer, header.tag);
  if (!first) latest->second = std::max(latest->second, header.tag);
  // The receive path of ZeroMQ messages: decode_message's checks, the sender policy,
  // accounting, rejections logged once, the mailbox.
  const auto head = encode_header(header);
  const std::span<const std::byte> frames[] = {head, std::span<const std::byte>(body.get(), header.payload_bytes)};
  inbound_pipeline_.handle(peer, frames, std::move(body));
  return InboundLink::Read::ready;
}

std::optional<std::uint64_t> RingLinks::latest_gossip_round(std::size_t peer) const {
  auto it = latest_gossip_round_.find(peer);
  if (it == latest_gossip_round_.end()) return std::nullopt;
  return it->second;
}

void RingLinks::progress_gossip(std::chrono::milliseconds wait) {
  progress_fds_.clear();
  progress_for_.clear();
  for (const auto& [peer, link] : inbound_) {
    if (!inbound_pipeline_.may_send_gossip(peer)) continue;
    // A link stopped at an allreduce chunk has input only its collective reads (it would be
    // ready at every poll).
    if (link->holds_header() && link->header().type == MessageType::allreduce_chunk) continue;
    progress_fds_.push_back(pollfd{link->fd(), POLLIN, 0});
    progress_for_.push_back(peer);
  }
  bool writing = false;
  for (const auto& [peer, link] : outbound_) {
    writing = writing || !link->idle();
    // Only what can be written now: a frame held back would make the poll return at once.
    if (!link->wants_write()) continue;
    progress_fds_.push_back(pollfd{link->fd(), POLLOUT, 0});
    progress_for_.push_back(kOutbound);
  }
  if (const int listener = listener_fd(); listener >= 0) {
    progress_fds_.push_back(pollfd{listener, POLLIN, 0});
    progress_for_.push_back(kListener);
  }
  for (const auto& pending : unidentified_) {
    progress_fds_.push_back(pollfd{pending.fd, POLLIN, 0});
    progress_for_.push_back(kListener);
  }
  // Connections awaiting a hello are rare (a peer connecting, or a stranger): the listener
  // is serviced whenever there are any, which also closes those past kHelloTimeout.
  bool accept_due = !unidentified_.empty();
  if (!progress_fds_.empty() &&
      ::poll(progress_fds_.data(), progress_fds_.size(), static_cast<int>(wait.count())) > 0) {
    for (std::size_t i = 0; i < progress_fds_.size(); ++i) {
      if (progress_fds_[i].revents == 0 || progress_for_[i] == kOutbound) continue;
      if (progress_for_[i] == kListener) {
        accept_due = true;
      } else {
        receive_gossip_from(progress_for_[i]);  // may drop the link (each has one entry)
      }
    }
  } else if (progress_fds_.empty() && wait.count() > 0) {
    std::this_thread::sleep_for(wait);  // nothing to poll (no links yet): the caller rechecks
  }
  if (accept_due) service_listener();
  // Links with frames left are written at every call, not only on POLLOUT (which TCP gives
  // only once a third of the send buffer is free): what the kernel holds, it moves on as the
  // receiver reads, even while this node's thread is not scheduled.
  if (writing) flush_gossip();
}

void RingLinks::receive_gossip_from(std::size_t peer) {
  InboundLink* link = inbound(peer);
  while (link) {
    InboundLink::Read status = link->read_header(context_for(peer), options_.max_payload_bytes);
    if (status == InboundLink::Read::failed) {
      if (!link->closed_between_frames()) {
        spdlog::warn("ring link from {}: {}; dropped", peers_.id(peer), link->error());
      }
      drop_inbound(peer);
      return;
    }
    if (status == InboundLink::Read::more) return;
    if (link->header().type == MessageType::allreduce_chunk) return;  // the collective's
    status = take_gossip_frame(peer, *link);
    if (status == InboundLink::Read::failed) {
      spdlog::warn("ring link from {}: {}; dropped", peers_.id(peer), link->error());
      drop_inbound(peer);
      return;
    }
    if (status == InboundLink::Read::more) return;
  }
}

}  // namespace starling::gossip
