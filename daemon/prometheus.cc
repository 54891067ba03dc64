#include "daemon/prometheus.h"

#include "topology/cluster_file.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <atomic>
#include <chrono>
#include <spdlog/spdlog.h>
#include <sstream>

namespace starling::daemon {
namespace {

std::string escape_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

class Exposition {
 public:
  Exposition(std::string node, std::string cluster)
      : base_labels_("node=\"" + escape_label(node) + "\",cluster=\"" + escape_label(cluster) + "\"") {}

  void family(const std::string& name, const std::string& type, const std::string& help) {
    out_ << "# HELP " << name << " " << help << "\n# TYPE " << name << " " << type << "\n";
  }
  void sample(const std::string& name, double value, const std::string& labels = "") {
    out_ << name << "{" << base_labels_ << (labels.empty() ? "" : "," + labels) << "} ";
    if (std::isfinite(value)) {
      out_ << value;
    } else {
      out_ << "NaN";
    }
    out_ << "\n";
  }
  std::string str() const { return out_.str(); }

 private:
  std::string base_labels_;
  std::ostringstream out_;
};

double number(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : std::nan("");
}

}  // namespace

std::string render_prometheus(const nlohmann::json& status, const nlohmann::json& peers) {
  Exposition e(status.value("node", ""), status.value("cluster", ""));
  auto gauge = [&](const std::string& name, const char* key, const std::string& help) {
    e.family(name, "gauge", help);
    e.sample(name, number(status, key));
  };
  e.family("starling_steps_total", "counter", "Training steps completed by this node.");
  e.sample("starling_steps_total", number(status, "step"));
  gauge("starling_epoch", "epoch", "Epochs of this node's shard completed.");
  gauge("starling_train_loss", "loss", "Smoothed training loss.");
  gauge("starling_test_accuracy", "accuracy", "Test accuracy at the last evaluation (0-1).");
  gauge("starling_test_loss", "eval_loss", "Test loss at the last evaluation.");
  gauge("starling_samples_per_second", "samples_per_s", "Training samples per second.");
  gauge("starling_learning_rate", "lr", "Learning rate of the last step.");
  gauge("starling_consensus_distance", "consensus_distance",
        "L2 distance of this node's model from the mean of the models it last mixed.");
  gauge("starling_peers_alive", "peers_alive", "Peers this node currently hears.");
  gauge("starling_peers", "peers_total", "Other nodes in the cluster.");
  e.family("starling_checkpoint_failures_total", "counter",
           "Scheduled checkpoints that could not be written (training went on).");
  e.sample("starling_checkpoint_failures_total", number(status, "checkpoint_failures"));
  e.family("starling_metrics_write_failures_total", "counter",
           "metrics.jsonl lines that could not be written (a full disk); each is lost.");
  e.sample("starling_metrics_write_failures_total", number(status, "metrics_write_failures"));
  e.family("starling_paused", "gauge", "1 while training is paused by a control request.");
  e.sample("starling_paused", status.value("paused", false) ? 1.0 : 0.0);
  if (status.contains("sync") && status["sync"].contains("rounds")) {
    e.family("starling_gossip_rounds_total", "counter", "Gossip rounds completed.");
    e.sample("starling_gossip_rounds_total", number(status["sync"], "rounds"));
    e.family("starling_gossip_neighbours_left_out_total", "counter",
             "Neighbours left out of a round (late or silent); their weight went to this node.");
    e.sample("starling_gossip_neighbours_left_out_total", number(status["sync"], "neighbours_left_out"));
    if (status["sync"].contains("apply_lag_steps")) {
      e.family("starling_gossip_apply_lag_steps_total", "counter",
               "Steps trained between each round's snapshot and its apply, summed over rounds "
               "(divide by the rounds' rate for the mean delay; 0 with staleness 0).");
      e.sample("starling_gossip_apply_lag_steps_total", number(status["sync"], "apply_lag_steps"));
    }
    if (status["sync"].contains("rounds_a_period_late")) {
      e.family("starling_gossip_rounds_a_period_late_total", "counter",
               "Rounds applied only at the next sync point, a whole period after their snapshot "
               "(staleness 1): the late tail, which costs most of what overlapping costs in "
               "accuracy.");
      e.sample("starling_gossip_rounds_a_period_late_total",
               number(status["sync"], "rounds_a_period_late"));
    }
  }

  const auto& list = peers.contains("peers") ? peers["peers"] : nlohmann::json::array();
  e.family("starling_peer_up", "gauge", "1 if the peer is alive, 0 if connecting, suspect or dead.");
  for (const auto& p : list) {
    e.sample("starling_peer_up", p.value("state", "") == "alive" ? 1.0 : 0.0,
             "peer=\"" + escape_label(p.value("id", "")) + "\"");
  }
  e.family("starling_peer_rtt_seconds", "gauge", "Smoothed heartbeat round-trip time.");
  for (const auto& p : list) {
    if (p["rtt_ms"].is_number()) {
      e.sample("starling_peer_rtt_seconds", p["rtt_ms"].get<double>() / 1000.0,
               "peer=\"" + escape_label(p.value("id", "")) + "\"");
    }
  }
  const std::vector<std::pair<std::string, std::string>> counters = {
      {"bytes_sent", "Bytes sent to the peer."},
      {"bytes_received", "Bytes received from the peer."},
      {"messages_sent", "Messages sent to the peer."},
      {"messages_received", "Valid messages received from the peer."},
      {"send_failures", "Messages that could not be queued for the peer (unreachable)."}};
  for (const auto& [key, help] : counters) {
    std::string name = "starling_peer_" + key + "_total";
    e.family(name, "counter", help);
    for (const auto& p : list) {
      e.sample(name, number(p, key.c_str()), "peer=\"" + escape_label(p.value("id", "")) + "\"");
    }
  }
  e.family("starling_messages_rejected_total", "counter",
           "Messages refused, by sender and reason (never applied).");
  for (const auto& p : list) {
    for (auto it = p["rejected"].begin(); it != p["rejected"].end(); ++it) {
      e.sample("starling_messages_rejected_total", it->get<double>(),
               "peer=\"" + escape_label(p.value("id", "")) + "\",reason=\"" +
                   escape_label(it.key()) + "\"");
    }
  }
  if (peers.contains("rejected_from_unknown")) {
    for (auto it = peers["rejected_from_unknown"].begin(); it != peers["rejected_from_unknown"].end(); ++it) {
      e.sample("starling_messages_rejected_total", it->get<double>(),
               "peer=\"\",reason=\"" + escape_label(it.key()) + "\"");
    }
  }
  e.family("starling_handshake_failures_total", "counter",
           "Connections to the data port that failed the ZeroMQ handshake.");
  e.sample("starling_handshake_failures_total", number(peers, "handshake_failures"));
  return e.str();
}

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct MetricsServer::Impl : std::enable_shared_from_this<MetricsServer::Impl> {
  // Every open connection holds a file descriptor of the daemon's. Idle connections (a client
  // that connects and never asks; a flood of them) would otherwise take the daemon's last
  // descriptors: its control socket then cannot accept, ZeroMQ aborts the process, and
  // checkpoints cannot be opened. A scraper asks at once and needs one connection, so a few
  // suffice; beyond them, new clients wait in the kernel's backlog, which costs the daemon
  // nothing, until a connection ends (each within kRequestTimeout).
  static constexpr std::size_t kMaxConnections = 8;
  static constexpr std::chrono::seconds kRequestTimeout{5};
  // After a failed accept (e.g. the process is out of descriptors), try again this much later
  // instead of at once: an immediate retry fails the same way, in a loop that takes a core.
  static constexpr std::chrono::milliseconds kAcceptRetry{100};

  asio::io_context& io;
  tcp::acceptor acceptor;
  asio::steady_timer accept_retry;
  Render render;
  std::size_t open = 0;        // connections being served (io thread only)
  bool accepting = false;      // an async_accept is pending (io thread only)
  bool said_accept_error = false;
  std::atomic<bool> stopped{false};

  Impl(asio::io_context& context, Render r)
      : io(context), acceptor(context), accept_retry(context), render(std::move(r)) {}

  void accept() {
    if (stopped || accepting || open >= kMaxConnections) return;
    accepting = true;
    acceptor.async_accept([self = shared_from_this()](const boost::system::error_code& ec,
                                                      tcp::socket socket) {
      self->accepting = false;
      if (ec == asio::error::operation_aborted || self->stopped) return;
      if (ec) {
        if (!self->said_accept_error) {
          self->said_accept_error = true;
          spdlog::warn("metrics endpoint: cannot accept a connection ({}); retrying every {} ms "
                       "(said once)",
                       ec.message(), kAcceptRetry.count());
        }
        self->accept_retry.expires_after(kAcceptRetry);
        self->accept_retry.async_wait([self](const boost::system::error_code& wait_ec) {
          if (!wait_ec) self->accept();
        });
        return;
      }
      self->serve(std::make_shared<tcp::socket>(std::move(socket)));
      self->accept();
    });
  }

  // Counts a connection as open until every handler that refers to the returned token is
  // gone (the request failed or timed out, or the response was written), then accepts again.
  std::shared_ptr<void> hold_connection() {
    ++open;
    return std::shared_ptr<void>(nullptr, [self = shared_from_this()](void*) {
      --self->open;
      self->accept();
    });
  }

  // (Re)arms `timer` to close `socket` kRequestTimeout from now; cancel the timer to keep it.
  static void close_after_timeout(asio::steady_timer& timer, std::shared_ptr<tcp::socket> socket) {
    timer.expires_after(kRequestTimeout);
    timer.async_wait([socket = std::move(socket)](const boost::system::error_code& ec) {
      if (!ec) {
        boost::system::error_code ignored;
        socket->close(ignored);
      }
    });
  }

  void serve(std::shared_ptr<tcp::socket> socket) {
    auto connection = hold_connection();
    auto buffer = std::make_shared<asio::streambuf>(8192);  // bounds the request size
    auto timer = std::make_shared<asio::steady_timer>(io);
    close_after_timeout(*timer, socket);  // a client that never finishes its request
    asio::async_read_until(
        *socket, *buffer, "\r\n\r\n",
        [self = shared_from_this(), socket, buffer, timer, connection](
            const boost::system::error_code& ec, std::size_t) {
          timer->cancel();
          std::string status = "200 OK", type = "text/plain; version=0.0.4; charset=utf-8", body;
          std::string extra_headers;
          bool head = false;
          if (ec == asio::error::not_found) {
            // The request filled the buffer without ending: say so rather than hang up.
            status = "431 Request Header Fields Too Large";
            body = "a request may have at most 8192 bytes\n";
          } else if (ec) {
            return;
          } else {
            std::istream in(buffer.get());
            std::string method, target;
            in >> method >> target;
            // A scrape config may add parameters (Prometheus' `params`): the path decides.
            const std::string path = target.substr(0, target.find('?'));
            head = method == "HEAD";
            if (method != "GET" && !head) {
              status = "405 Method Not Allowed";
              extra_headers = "\r\nAllow: GET, HEAD";
              body = "only GET and HEAD\n";
            } else if (path != "/metrics") {
              status = "404 Not Found";
              body = "metrics are at /metrics\n";
            } else {
              body = self->render();
            }
          }
          auto response = std::make_shared<std::string>(
              "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
              "\r\nContent-Length: " + std::to_string(body.size()) + extra_headers +
              "\r\nConnection: close\r\n\r\n" + (head ? std::string() : body));
          close_after_timeout(*timer, socket);  // a client that does not read its response
          asio::async_write(*socket, asio::buffer(*response),
                            [socket, response, timer, connection](const boost::system::error_code&,
                                                                  std::size_t) {
                              timer->cancel();
                              boost::system::error_code ignored;
                              socket->shutdown(tcp::socket::shutdown_both, ignored);
                            });
        });
  }
};

MetricsServer::MetricsServer(asio::io_context& io, const std::string& address, Render render)
    : impl_(std::make_shared<Impl>(io, std::move(render))) {
  auto colon = address.rfind(':');
  std::string host = topology::without_brackets(address.substr(0, colon));  // "[::1]:9100"
  if (host == "localhost") host = "127.0.0.1";  // as the cluster file's duplicate check reads it
  auto port = static_cast<unsigned short>(std::stoi(address.substr(colon + 1)));
  boost::system::error_code ec;
  auto ip = asio::ip::make_address(host, ec);
  if (ec) throw std::runtime_error("metrics address " + address + ": \"" + host + "\" is not an IP address");
  tcp::endpoint endpoint(ip, port);
  impl_->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl_->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) impl_->acceptor.bind(endpoint, ec);
  if (!ec) impl_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw std::runtime_error("cannot listen for metrics on " + address + ": " + ec.message());
  impl_->accept();
}

MetricsServer::~MetricsServer() {
  impl_->stopped = true;  // handlers destroyed with the io_context must not accept again
  boost::system::error_code ignored;
  impl_->accept_retry.cancel();
  impl_->acceptor.close(ignored);
}

unsigned short MetricsServer::port() const { return impl_->acceptor.local_endpoint().port(); }

}  // namespace starling::daemon
