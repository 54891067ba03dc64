#pragma once
// ControlServer: a node's control socket. A ZeroMQ ROUTER bound at the control endpoint and
// served by its own thread, so a slow or hostile client never stalls training, and training
// never stalls status. Requests are parsed here (control_protocol.h); the handler answers at
// once from snapshots, or keeps the ReplyToken and calls reply() later from any thread (e.g.
// a checkpoint taken by the training thread at its next step boundary).
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

#include "daemon/control_protocol.h"

namespace starling::daemon {

class ControlError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// CURVE on a control socket (README "Security"): the node's secret key, and the clients it
// admits: Z85 public key -> the name a client with that key is logged as.
struct ControlCurve {
  std::string secret_key;
  std::map<std::string, std::string> admitted;
};

struct ReplyToken {
  std::string identity;   // the client's routing id
  std::string user;       // with CURVE, the name of the client's key; else empty
  bool delimiter = false;  // the client is a REQ socket (an empty frame precedes the body)
  nlohmann::json id;       // request id to echo
};

class ControlServer {
 public:
  using Handler = std::function<void(const ControlRequest&, ReplyToken)>;

  // Binds `endpoint` (for ipc://, a socket file only this user can connect to, in Starling's
  // private runtime directory by default; see runtime_paths.h). With `curve`,
  // only clients holding an admitted key get in, encrypted (a ZAP handler of the server's own
  // refuses the rest, each refused key logged once). Throws ControlError naming the endpoint
  // if it cannot bind, or if another live node already answers there.
  // Requests that come before start() wait in the socket's queue.
  ControlServer(std::string endpoint, Handler handler,
                std::optional<ControlCurve> curve = std::nullopt);
  ~ControlServer();

  // Starts answering: from now on the handler runs, on the server's own thread. Not in the
  // constructor, because a handler usually replies through the pointer its owner keeps to this
  // server, which the owner only has once the constructor has returned. (starlingd once started
  // in the constructor, and a status request that came in that window crashed the node.)
  void start();

  void reply(const ReplyToken& token, nlohmann::json body);  // thread-safe
  const std::string& endpoint() const { return endpoint_; }
  std::uint64_t requests() const { return requests_.load(); }
  std::uint64_t bad_requests() const { return bad_requests_.load(); }

 private:
  struct Impl;
  std::string endpoint_;
  std::atomic<std::uint64_t> requests_{0};
  std::atomic<std::uint64_t> bad_requests_{0};
  std::unique_ptr<Impl> impl_;
};

}  // namespace starling::daemon
