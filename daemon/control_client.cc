#include "daemon/control_client.h"

#include <filesystem>
#include <memory>
#include <zmq.hpp>

#include "daemon/runtime_paths.h"

namespace starling::daemon {

std::vector<ControlResult> query_nodes(const std::vector<std::string>& endpoints,
                                       const nlohmann::json& request,
                                       std::chrono::milliseconds timeout) {
  std::vector<ControlResult> results(endpoints.size());
  zmq::context_t context(1);
  std::vector<std::unique_ptr<zmq::socket_t>> sockets(endpoints.size());
  std::vector<zmq::pollitem_t> items;
  std::vector<std::size_t> item_node;
  const std::string body = request.dump();
  for (std::size_t i = 0; i < endpoints.size(); ++i) {
    auto path = ipc_path(endpoints[i]);
    if (!path.empty() && !std::filesystem::exists(path)) {
      results[i].error = "unreachable: no control socket at " + path.string();
      continue;
    }
    try {
      auto socket = std::make_unique<zmq::socket_t>(context, zmq::socket_type::dealer);
      socket->set(zmq::sockopt::linger, 0);
      socket->set(zmq::sockopt::maxmsgsize, static_cast<std::int64_t>(16 << 20));
      socket->connect(endpoints[i]);
      zmq::message_t message(body.data(), body.size());
      // A DEALER queues the request until the connection is up (or the deadline passes).
      (void)socket->send(message, zmq::send_flags::dontwait);
      items.push_back({socket->handle(), 0, ZMQ_POLLIN, 0});
      item_node.push_back(i);
      sockets[i] = std::move(socket);
    } catch (const zmq::error_t& e) {
      results[i].error = std::string("cannot connect to ") + endpoints[i] + ": " + e.what();
    }
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t pending = items.size();
  while (pending > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    zmq::poll(items.data(), items.size(), left);
    for (std::size_t k = 0; k < items.size(); ++k) {
      if (!(items[k].revents & ZMQ_POLLIN)) continue;
      std::size_t node = item_node[k];
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
      items[k].events = 0;  // done with this one
      --pending;
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
                         std::chrono::milliseconds timeout) {
  return query_nodes({endpoint}, request, timeout).front();
}

}  // namespace starling::daemon
