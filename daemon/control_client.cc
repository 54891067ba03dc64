#include "daemon/control_client.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <zmq.hpp>

#include "daemon/json_text.h"
#include "daemon/runtime_paths.h"
#include "gossip/ipv6.h"
#include "gossip/socket_monitor.h"

namespace starling::daemon {

namespace {

// True if `path` is a Unix socket file that refuses connections: its node is gone (killed, or
// crashed) and left the file. A file that is no socket, or any other error, is left to
// ZeroMQ to report.
bool nothing_listens_on(const std::filesystem::path& path) {
  sockaddr_un address{};
  if (path.native().size() >= sizeof(address.sun_path)) return false;
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.native().size());
  const bool refused =
      ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0 &&
      errno == ECONNREFUSED;
  ::close(fd);
  return refused;
}

}  // namespace

std::vector<ControlResult> query_nodes(const std::vector<std::string>& endpoints,
                                       const nlohmann::json& request,
                                       std::chrono::milliseconds timeout,
                                       const ControlClientCurve* curve) {
  std::vector<ControlResult> results(endpoints.size());
  zmq::context_t context(1);
  std::vector<std::unique_ptr<zmq::socket_t>> sockets(endpoints.size());
  // Per encrypted endpoint, the PAIR end of its socket's monitor: a refused key shows there as
  // a failed handshake, which would otherwise look like a node that does not answer.
  std::vector<std::unique_ptr<zmq::socket_t>> monitors(endpoints.size());
  std::vector<zmq::pollitem_t> items;
  std::vector<std::size_t> item_node;
  std::vector<bool> item_is_monitor;
  const std::string body = json_text(request);
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    auto path = ipc_path(endpoints[i]);
    if (!path.empty() && !std::filesystem::exists(path)) {
      results[i].error = "unreachable: no control socket at " + path.string();
      continue;
    }
    if (!path.empty() && nothing_listens_on(path)) {
      // ZeroMQ would retry the connection until the timeout and then say only "no reply".
      results[i].error = "unreachable: nothing listens on " + path.string() +
                         " (left by a node that did not exit cleanly; it is not running)";
      continue;
    }
    try {
      auto socket = std::make_unique<zmq::socket_t>(context, zmq::socket_type::dealer);
      socket->set(zmq::sockopt::linger, 0);
      socket->set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(16 << 20));
      if (curve && i < curve->server_keys.size() && !curve->server_keys[i].empty()) {
        socket->set(zmq::sockopt::curve_serverkey, curve->server_keys[i]);
        socket->set(zmq::sockopt::curve_publickey, curve->public_key);
        socket->set(zmq::sockopt::curve_secretkey, curve->secret_key);
        monitors[i] = std::make_unique<zmq::socket_t>(gossip::monitor_socket(
            context, *socket, "inproc://starling-ctl-monitor-" + std::to_string(i),
            ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL));
        items.push_back({monitors[i]->handle(), 0, ZMQ_POLLIN, 0});
        item_node.push_back(i);
        item_is_monitor.push_back(true);
      }
      gossip::enable_ipv6_for(*socket, endpoints[i]);
      socket->connect(endpoints[i]);
      zmq::message_t message(body.data(), body.size());
      // A DEALER queues the request until the connection is up (or the deadline passes).
      (void)socket->send(message, zmq::send_flags::dontwait);
      items.push_back({socket->handle(), 0, ZMQ_POLLIN, 0});
      item_node.push_back(i);
      item_is_monitor.push_back(false);
      sockets[i] = std::move(socket);
    } catch (const zmq::error_t& e) {
      results[i].error = std::string("cannot connect to ") + endpoints[i] + ": " + e.what();
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t pending = sockets.size() - static_cast<std::size_t>(
      std::count(sockets.begin(), sockets.end(), nullptr));
  // Stops waiting for node `node`: its reply socket's item and its monitor's.
  auto settle = [&](std::size_t node) {
    for (std::size_t k = 0; k < items.size(); ++k) {
      if (item_node[k] == node) items[k].events = 0;
    }
    --pending;
  };
  while (pending > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    zmq::poll(items.data(), items.size(), left);
    for (std::size_t k = 0; k < items.size(); ++k) {
      if (!(items[k].revents & ZMQ_POLLIN) || items[k].events == 0) continue;
      std::size_t node = item_node[k];
      if (item_is_monitor[k]) {
        auto id = gossip::next_monitor_event(*monitors[node]);
        if (!id) continue;
        results[node].error =
            *id & ZMQ_EVENT_HANDSHAKE_FAILED_AUTH
                ? "refused: the node does not admit the key starlingctl presented (a node's "
                  "secret key file: --key FILE)"
                : "refused: the encrypted handshake failed (is the node's public_key in the "
                  "cluster file the node's own key?)";
        settle(node);
        continue;
      }
      zmq::message_t reply;
      if (!sockets[node]->recv(reply, zmq::recv_flags::dontwait)) continue;
      // Drain any further frames; a reply is one frame.
      while (reply.more()) {
        zmq::message_t extra;
        (void)sockets[node]->recv(extra, zmq::recv_flags::dontwait);
        if (!extra.more()) break;
      }
      auto parsed = nlohmann::json::parse(reply.to_string_view(), nullptr, false);
      if (parsed.is_discarded()) {
        results[node].error = "answered with something that is not JSON";
      } else {
        results[node].answered = true;
        results[node].reply = std::move(parsed);
      }
      settle(node);  // done with this one
    }
  }
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    if (!results[i].answered && results[i].error.empty()) {
      results[i].error = "unreachable: no reply within " + std::to_string(timeout.count()) + " ms";
    }
  }
  return results;
}

ControlResult query_node(const std::string& endpoint, const nlohmann::json& request,
                         std::chrono::milliseconds timeout, const ControlClientCurve* curve) {
  return query_nodes({endpoint}, request, timeout, curve).front();
}

}  // namespace starling::daemon
