#include "daemon/control_server.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <deque>
#include <mutex>
#include <zmq.hpp>

#include "daemon/control_client.h"
#include "daemon/json_text.h"
#include "daemon/runtime_paths.h"
#include "gossip/ipv6.h"
#include "gossip/zap_handler.h"

namespace starling::daemon {

namespace {
constexpr std::size_t kMaxCurveOverhead = 512;  // CURVE boxes a frame with a few dozen bytes
}  // namespace

struct ControlServer::Impl {
  zmq::context_t context{1};
  std::unique_ptr<gossip::ZapHandler> zap;  // with CURVE; bound before the router
  zmq::socket_t router{context, zmq::socket_type::router};
  int wake_fd = -1;
  std::mutex mutex;
  std::deque<std::pair<ReplyToken, std::string>> replies;  // guarded by mutex
  std::atomic<bool> stopping{false};
  std::thread thread;
  Handler handler;

  void send(const ReplyToken& token, const std::string& body) {
    try {
      zmq::message_t identity(token.identity.data(), token.identity.size());
      if (!router.send(identity, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return;
      if (token.delimiter) {
        zmq::message_t empty;
        router.send(empty, zmq::send_flags::sndmore | zmq::send_flags::dontwait);
      }
      zmq::message_t message(body.data(), body.size());
      router.send(message, zmq::send_flags::dontwait);
    } catch (const zmq::error_t& e) {
      // The client went away before its reply (ROUTER_MANDATORY): nothing to do.
      spdlog::debug("control reply not delivered: {}", e.what());
    }
  }

  void serve_one(ControlServer& owner) {
    std::vector<zmq::message_t> frames;
    zmq::message_t frame;
    if (!router.recv(frame, zmq::recv_flags::dontwait)) return;
    frames.push_back(std::move(frame));
    while (frames.back().more() && frames.size() < 8) {
      frames.emplace_back();
      (void)router.recv(frames.back(), zmq::recv_flags::none);
    }
    while (frames.back().more()) {  // drop anything beyond a sane frame count
      zmq::message_t extra;
      (void)router.recv(extra, zmq::recv_flags::none);
      if (!extra.more()) break;
    }
    ++owner.requests_;
    ReplyToken token;
    token.identity = frames[0].to_string();
    if (zap && frames.size() > 1) {
      // The name of the key the connection proved (metadata rides on the frames that came
      // over the connection, not on the routing id the ROUTER adds).
      if (const char* user = zmq_msg_gets(frames[1].handle(), "User-Id")) token.user = user;
    }
    std::size_t body_index = 1;
    if (frames.size() >= 3 && frames[1].size() == 0) {
      token.delimiter = true;  // REQ client
      body_index = 2;
    }
    if (frames.size() != body_index + 1) {
      ++owner.bad_requests_;
      send(token, json_text(error_reply("malformed request: expected exactly one JSON frame")));
      return;
    }
    auto parsed = parse_control_request(frames[body_index].to_string_view());
    if (auto* message = std::get_if<std::string>(&parsed)) {
      ++owner.bad_requests_;
      send(token, json_text(error_reply(*message)));
      return;
    }
    const auto& request = std::get<ControlRequest>(parsed);
    token.id = request.id;
    try {
      handler(request, token);
    } catch (const std::exception& e) {
      send(token, json_text(error_reply(std::string("internal error: ") + e.what(), request.id)));
    }
  }

  void run(ControlServer& owner) {
    std::vector<zmq::pollitem_t> items = {{router.handle(), 0, ZMQ_POLLIN, 0},
                                          {nullptr, wake_fd, ZMQ_POLLIN, 0}};
    if (zap) items.push_back({zap->socket().handle(), 0, ZMQ_POLLIN, 0});
    while (!stopping.load()) {
      try {
        zmq::poll(items.data(), items.size(), std::chrono::milliseconds(500));
      } catch (const zmq::error_t& e) {
        if (e.num() == EINTR) continue;
        throw;
      }
      if (items[1].revents & ZMQ_POLLIN) {
        std::uint64_t value;
        [[maybe_unused]] auto n = ::read(wake_fd, &value, sizeof value);
      }
      std::deque<std::pair<ReplyToken, std::string>> ready;
      {
        std::lock_guard lock(mutex);
        ready.swap(replies);
      }
      for (auto& [token, body] : ready) send(token, body);
      if (zap && (items[2].revents & ZMQ_POLLIN)) zap->serve();
      if (items[0].revents & ZMQ_POLLIN) {
        for (int i = 0; i < 64; ++i) {
          int events = router.get(zmq::sockopt::events);
          if (!(events & ZMQ_POLLIN)) break;
          serve_one(owner);
        }
      }
    }
  }
};

ControlServer::ControlServer(std::string endpoint, Handler handler,
                             std::optional<ControlCurve> curve)
    : endpoint_(std::move(endpoint)), impl_(std::make_unique<Impl>()) {
  impl_->handler = std::move(handler);
  auto path = ipc_path(endpoint_);
  if (!path.empty()) {
    if (std::filesystem::exists(path)) {
      // ZeroMQ would silently take the path over from a running node; ask first.
      auto answer = query_node(endpoint_, {{"cmd", "status"}}, std::chrono::milliseconds(500));
      if (answer.answered) {
        throw ControlError("a live node already answers on " + endpoint_ + " (node " +
                           answer.reply.value("node", std::string("?")) +
                           "); is this node already running?");
      }
    }
    try {
      // Starling's own runtime directory (the default place) is kept private. A directory the
      // operator named is theirs: it is created if missing, but an existing one is never
      // re-moded (it may be /tmp, or a home directory); the socket file itself is made
      // owner-only below, which is what connecting to it needs.
      if (path.has_parent_path()) {
        if (path.parent_path() == runtime_directory()) {
          ensure_private_directory(path.parent_path());
        } else {
          ensure_directory(path.parent_path());
        }
      }
    } catch (const std::exception& e) {
      throw ControlError("control socket " + endpoint_ + ": " + e.what());
    }
  }
  if (curve) {
    std::map<std::string, std::string> admitted;
    try {
      for (const auto& [key, name] : curve->admitted) {
        admitted.emplace(gossip::ZapHandler::binary_key(key), name);
      }
    } catch (const std::invalid_argument& e) {
      throw ControlError("control socket " + endpoint_ + ": " + e.what());
    }
    // The ZAP handler must be bound before the socket accepts a connection: without one, a
    // CURVE server admits any key.
    impl_->zap = std::make_unique<gossip::ZapHandler>(
        impl_->context, std::move(admitted), "the control socket " + endpoint_,
        "is not a node's key in the cluster file");
    impl_->router.set(zmq::sockopt::curve_server, 1);
    impl_->router.set(zmq::sockopt::curve_secretkey, curve->secret_key);
    impl_->router.set(zmq::sockopt::zap_domain, "starling-control");
  }
  impl_->router.set(zmq::sockopt::router_mandatory, 1);
  impl_->router.set(zmq::sockopt::linger, 0);
  impl_->router.set(zmq::sockopt::maxmsgsize,
                    static_cast<std::int64_t>(kMaxControlRequestBytes +
                                              (curve ? kMaxCurveOverhead : 0)));
  try {
    // Connecting to a Unix socket takes write permission on its file: under umask 0077 the
    // file is owner-only from the moment it exists (a chmod after the bind would leave a
    // window). The umask is the process's; nothing else here creates files while it binds.
    std::optional<ScopedUmask> owner_only;
    if (!path.empty()) owner_only.emplace(0077);
    gossip::enable_ipv6_for(impl_->router, endpoint_);
    impl_->router.bind(endpoint_);
  } catch (const zmq::error_t& e) {
    throw ControlError("cannot bind control endpoint " + endpoint_ + ": " + e.what());
  }
  impl_->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

void ControlServer::start() {
  if (impl_->thread.joinable()) throw std::logic_error("ControlServer::start called twice");
  impl_->thread = std::thread([this] {
    try {
      impl_->run(*this);
    } catch (const std::exception& e) {
      spdlog::error("control socket {} stopped: {}", endpoint_, e.what());
    }
  });
}

ControlServer::~ControlServer() {
  impl_->stopping.store(true);
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(impl_->wake_fd, &one, sizeof one);
  if (impl_->thread.joinable()) impl_->thread.join();
  ::close(impl_->wake_fd);
  auto path = ipc_path(endpoint_);
  if (!path.empty()) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
  }
}

void ControlServer::reply(const ReplyToken& token, nlohmann::json body) {
  if (!token.id.is_null()) body["id"] = token.id;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->replies.emplace_back(token, json_text(body));
  }
  std::uint64_t one = 1;
  [[maybe_unused]] auto n = ::write(impl_->wake_fd, &one, sizeof one);
}

}  // namespace starling::daemon
