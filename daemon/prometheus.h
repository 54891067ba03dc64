#pragma once
// Prometheus exposition: a node's status and peer table rendered in the text format (0.0.4),
// and a minimal HTTP/1.1 server (Boost.Asio) that serves it at GET /metrics on the node's
// `metrics` address. The server answers from snapshots, never blocks training, closes each
// connection after one response, and bounds request size and time.
#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace starling::daemon {

// `status` and `peers` are the control socket's replies (node.cc builds both).
std::string render_prometheus(const nlohmann::json& status, const nlohmann::json& peers);

class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  // Listens on "host:port" (throws std::runtime_error naming the address if it cannot).
  MetricsServer(boost::asio::io_context& io, const std::string& address, Render render);
  ~MetricsServer();
  unsigned short port() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace starling::daemon
