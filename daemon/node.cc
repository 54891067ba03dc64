#include "daemon/node.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include "daemon/allreduce_sync.h"
#include "daemon/control_server.h"
#include "daemon/curve_keys.h"
#include "daemon/dynamic_sync.h"
#include "daemon/gossip_sync.h"
#include "daemon/metrics_log.h"
#include "daemon/node_lock.h"
#include "daemon/prometheus.h"
#include "daemon/runtime_paths.h"
#include "daemon/sync_strategy.h"
#include "daemon/systemd_notify.h"
#include "topology/cluster_file.h"
#include "topology/config_error.h"
#include "topology/protocol_fingerprint.h"
#include "topology/topology.h"
#include "training/checkpoint_file.h"
#include "training/trainer.h"

namespace starling::daemon {
namespace {

using Clock = std::chrono::steady_clock;

nlohmann::json number_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

void configure_logging(const std::string& node_id, const std::string& level) {
  auto logger = spdlog::stderr_color_mt("starlingd-" + node_id);
  logger->set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [" + node_id + "] %v");
  logger->set_level(spdlog::level::from_str(level));
  spdlog::set_default_logger(logger);
  training::set_warning_sink([](const std::string& message) { spdlog::warn("training: {}", message); });
}

std::uint64_t incarnation_now() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

// The node a stop signal goes to, and a signal that came before any node was running.
std::mutex g_signal_mutex;
Node* g_running_node = nullptr;  // guarded by g_signal_mutex
int g_pending_signal = 0;        // guarded by g_signal_mutex

}  // namespace

void request_stop_from_signal(int signal) {
  std::lock_guard lock(g_signal_mutex);
  if (g_running_node) {
    spdlog::info("received {}", signal == SIGTERM ? "SIGTERM" : strsignal(signal));
    g_running_node->request_stop();
  } else {
    g_pending_signal = signal;
  }
}

struct Node::Impl {
  topology::ClusterSpec spec;
  std::unique_ptr<topology::Topology> topo;
  std::size_t index = 0;
  std::string id;
  std::filesystem::path node_dir;
  std::filesystem::path checkpoint_dir;
  std::unique_ptr<NodeDirectoryLock> directory_lock;  // taken before anything is written there
  std::unique_ptr<MetricsLog> metrics;
  std::unique_ptr<training::Trainer> trainer;
  // Immutable facts about the trainer, cached so the control thread never touches it.
  std::string device;
  std::int64_t total_steps = 0;
  std::unique_ptr<gossip::ZmqTransport> transport;
  std::unique_ptr<SyncStrategy> sync;
  std::unique_ptr<ControlServer> control;
  Clock::time_point started = Clock::now();

  // Timers (the systemd watchdog) are served by an Asio io_context on its own thread.
  boost::asio::io_context io;
  std::unique_ptr<boost::asio::steady_timer> watchdog;
  std::unique_ptr<MetricsServer> metrics_server;  // when the node has a `metrics` address
  std::thread io_thread;

  // Requests from other threads, served by the training thread between steps.
  std::atomic<bool> stop_requested{false};
  std::atomic<bool> paused{false};
  // Where the training thread is: checkpoint requests are served only inside the loop, so the
  // control thread refuses them before it (a node waiting for its peers has nothing new to
  // save, and its sync state is not built yet) and after it (the final checkpoint is written).
  enum class Phase { starting, training, ended };
  std::atomic<Phase> phase{Phase::starting};
  std::mutex commands_mutex;
  std::condition_variable commands_changed;
  std::deque<ReplyToken> checkpoint_requests;  // guarded by commands_mutex
  std::atomic<std::int64_t> loop_heartbeat_ns{0};

  // What status reports; written by the training thread, read by the control thread.
  mutable std::mutex status_mutex;
  std::string state = "starting";
  std::int64_t step = 0;
  double epoch = 0;
  double loss = NAN;
  double accuracy = NAN;
  double eval_loss = NAN;
  double samples_per_s = 0;
  double lr = 0;
  std::string last_checkpoint;
  std::uint64_t checkpoint_failures = 0;  // periodic checkpoints that could not be written
  std::string checkpoint_error;           // why the latest one failed; empty once one succeeds

  void set_state(const std::string& s) {
    std::lock_guard lock(status_mutex);
    state = s;
  }

  nlohmann::json status_json() const {
    nlohmann::json j;
    {
      std::lock_guard lock(status_mutex);
      j = {{"node", id},
           {"cluster", spec.name},
           {"state", state},
           {"mode", sync->mode()},
           {"step", step},
           {"total_steps", total_steps},
           {"epoch", epoch},
           {"loss", number_or_null(loss)},
           {"accuracy", number_or_null(accuracy)},
           {"eval_loss", number_or_null(eval_loss)},
           {"samples_per_s", samples_per_s},
           {"lr", lr},
           {"last_checkpoint", last_checkpoint},
           {"checkpoint_failures", checkpoint_failures},
           {"metrics_write_failures", metrics ? metrics->failed_writes() : 0},
           {"checkpoint_error", checkpoint_error.empty() ? nlohmann::json(nullptr)
                                                         : nlohmann::json(checkpoint_error)}};
    }
    j["device"] = device;
    j["pid"] = ::getpid();
    j["uptime_s"] = std::chrono::duration<double>(Clock::now() - started).count();
    j["paused"] = paused.load();
    std::size_t alive = 0, total = 0;
    std::uint64_t sent = 0, received = 0, rejected = 0;
    if (transport) {
      auto table = transport->peers().snapshot();
      for (std::size_t i = 0; i < table.size(); ++i) {
        if (i == index) continue;
        ++total;
        if (table[i].state == gossip::PeerState::alive) ++alive;
        sent += table[i].bytes_sent;
        received += table[i].bytes_received;
        for (auto count : table[i].rejected) rejected += count;
      }
    }
    j["peers_alive"] = alive;
    j["peers_total"] = total;
    j["bytes_sent"] = sent;
    j["bytes_received"] = received;
    j["rejected"] = rejected;
    j["consensus_distance"] = sync->consensus_distance();
    j["sync"] = sync->status();
    return j;
  }

  nlohmann::json peers_json() const {
    nlohmann::json peers = nlohmann::json::array();
    nlohmann::json unknown = nlohmann::json::object();
    std::uint64_t handshake_failures = 0;
    if (transport) {
      auto now = Clock::now();
      auto table = transport->peers().snapshot();
      for (std::size_t i = 0; i < table.size(); ++i) {
        if (i == index) continue;
        const auto& p = table[i];
        nlohmann::json rejected = nlohmann::json::object();
        for (std::size_t r = 0; r < gossip::kRejectReasonCount; ++r) {
          if (p.rejected[r]) {
            rejected[std::string(gossip::to_string(static_cast<gossip::RejectReason>(r)))] =
                p.rejected[r];
          }
        }
        peers.push_back(
            {{"id", p.id},
             {"state", std::string(gossip::to_string(p.state))},
             {"back", p.back},
             {"paused", p.paused},
             {"returns", p.returns},
             {"neighbour", topo->graph().has_edge(index, i)},
             {"last_seen_ms", p.last_seen ? nlohmann::json(std::chrono::duration<double, std::milli>(
                                                              now - *p.last_seen)
                                                              .count())
                                          : nlohmann::json(nullptr)},
             {"rtt_ms", p.rtt_ms >= 0 ? nlohmann::json(p.rtt_ms) : nlohmann::json(nullptr)},
             {"suspect_after_ms", p.suspect_after.count()},
             {"bytes_sent", p.bytes_sent},
             {"bytes_received", p.bytes_received},
             {"messages_sent", p.messages_sent},
             {"messages_received", p.messages_received},
             {"send_failures", p.send_failures},
             {"rejected", rejected},
             {"round", p.reported_round},
             {"step", p.reported_step},
             {"ring_port", p.ring_port ? nlohmann::json(p.ring_port) : nlohmann::json(nullptr)},
             {"fingerprint_mismatch", p.fingerprint_mismatch}});
      }
      auto counts = transport->peers().unknown_rejections();
      for (std::size_t r = 0; r < gossip::kRejectReasonCount; ++r) {
        if (counts[r]) {
          unknown[std::string(gossip::to_string(static_cast<gossip::RejectReason>(r)))] = counts[r];
        }
      }
      handshake_failures = transport->peers().handshake_failures();
    }
    // Where this node's ring link listens (README "Ring links"): a TCP port, or a Unix socket
    // in a cluster of ipc:// endpoints; both null when collectives use ZeroMQ.
    nlohmann::json ring_port = nullptr;
    nlohmann::json ring_socket = nullptr;
    if (const auto* links = transport ? transport->ring_links() : nullptr) {
      if (links->unix_sockets()) {
        ring_socket = links->socket_path();
      } else {
        ring_port = links->port();
      }
    }
    return {{"node", id},
            {"peers", peers},
            {"rejected_from_unknown", unknown},
            {"handshake_failures", handshake_failures},
            {"ring_link_port", ring_port},
            {"ring_link_socket", ring_socket}};
  }

  void handle_control(const ControlRequest& request, ReplyToken token) {
    // Who asked, for the log lines of commands that change something: with CURVE, the node
    // whose key the client proved.
    const std::string by = token.user.empty() ? "" : " (key of " + token.user + ")";
    switch (request.command) {
      case ControlCommand::status: control->reply(token, ok_reply(status_json())); return;
      case ControlCommand::peers: control->reply(token, ok_reply(peers_json())); return;
      case ControlCommand::pause:
        paused.store(true);
        spdlog::info("paused by control request{}", by);
        control->reply(token, ok_reply({{"paused", true}}));
        return;
      case ControlCommand::resume:
        paused.store(false);
        commands_changed.notify_all();
        spdlog::info("resumed by control request{}", by);
        control->reply(token, ok_reply({{"paused", false}}));
        return;
      case ControlCommand::stop:
        if (!by.empty()) spdlog::info("stop requested by control request{}", by);
        request_stop();
        control->reply(token, ok_reply({{"stopping", true}}));
        return;
      case ControlCommand::sync: {
        auto* gossip = dynamic_cast<GossipSync*>(sync.get());
        if (!gossip) {
          control->reply(token, error_reply("sync asks a gossip cluster for one allreduce; this "
                                            "node runs mode \"" + sync->mode() + "\""));
          return;
        }
        std::uint64_t round = gossip->request_sync("requested by starlingctl sync");
        control->reply(token, ok_reply({{"round", round}}));
        return;
      }
      case ControlCommand::checkpoint: {
        // Written by the training thread at its next step boundary; it replies then. The phase
        // is read under commands_mutex, which the training thread holds when it ends the loop
        // and answers what is queued: no request is left without a reply.
        std::lock_guard lock(commands_mutex);
        if (phase.load() != Phase::training) {
          control->reply(token, error_reply(
              phase.load() == Phase::starting
                  ? std::string("not training yet (it waits for its peers): there is nothing "
                                "new to checkpoint")
                  : "training has ended; its final checkpoint is in " + checkpoint_dir.string()));
          return;
        }
        checkpoint_requests.push_back(token);
        commands_changed.notify_all();
        return;
      }
    }
  }

  void request_stop() {
    if (!stop_requested.exchange(true)) spdlog::info("stop requested; stopping after a checkpoint");
    commands_changed.notify_all();
    // A collective waiting for its members (the final allreduce) asks the stop check whenever
    // the mailbox wakes it: wake it now rather than at the next message.
    if (transport) transport->mailbox().wake_all();
  }

  std::string write_checkpoint() {
    training::CheckpointExtras extras;
    sync->save_state(extras);
    std::string path = trainer->save_checkpoint(checkpoint_dir.string(), extras);
    {
      std::lock_guard lock(status_mutex);
      last_checkpoint = path;
    }
    metrics->write({{"event", "checkpoint"}, {"step", trainer->step_count()}, {"path", path}});
    return path;
  }

  // A checkpoint of the schedule (checkpoint_every). One that cannot be written (a full disk,
  // a directory gone) does not end training: the model is intact in memory, the newest
  // checkpoint on disk is still whole (a checkpoint is written to a temp file and renamed), and
  // the next one may succeed. It is logged, counted and shown in status until one succeeds.
  void write_scheduled_checkpoint() {
    try {
      write_checkpoint();
    } catch (const std::exception& e) {
      std::string previous;
      {
        std::lock_guard lock(status_mutex);
        ++checkpoint_failures;
        checkpoint_error = e.what();
        previous = last_checkpoint;
      }
      spdlog::error("checkpoint at step {} not written: {}; training goes on, and the newest "
                    "checkpoint is {}",
                    trainer->step_count(), e.what(), previous.empty() ? "none" : previous);
      metrics->write({{"event", "checkpoint_failed"},
                      {"step", trainer->step_count()},
                      {"error", e.what()}});
      return;
    }
    std::lock_guard lock(status_mutex);
    if (!checkpoint_error.empty()) {
      spdlog::info("checkpoints are written again (step {})", trainer->step_count());
      checkpoint_error.clear();
    }
  }

  void serve_checkpoint_requests() {
    std::deque<ReplyToken> requests;
    {
      std::lock_guard lock(commands_mutex);
      requests.swap(checkpoint_requests);
    }
    if (requests.empty()) return;
    nlohmann::json reply;
    try {
      std::string path = write_checkpoint();
      reply = ok_reply({{"path", path}, {"step", trainer->step_count()}});
    } catch (const std::exception& e) {
      reply = error_reply(std::string("checkpoint failed: ") + e.what());
    }
    for (const auto& token : requests) control->reply(token, reply);
  }

  // Returns the seconds the evaluation took.
  double evaluate(const char* why) {
    set_state("evaluating");
    auto result = trainer->evaluate();
    {
      std::lock_guard lock(status_mutex);
      accuracy = result.accuracy;
      eval_loss = result.loss;
    }
    metrics->write({{"event", "eval"},
                    {"why", why},
                    {"step", trainer->step_count()},
                    {"epoch", trainer->epoch()},
                    {"loss", result.loss},
                    {"accuracy", result.accuracy},
                    {"consensus_distance", sync->consensus_distance()},
                    {"seconds", result.seconds}});
    spdlog::info("step {} epoch {:.2f}: test accuracy {:.2f}% loss {:.4f}", trainer->step_count(),
                 trainer->epoch(), 100.0 * result.accuracy, result.loss);
    set_state("training");
    return result.seconds;
  }

  void start_io_thread() {
    auto guard = boost::asio::make_work_guard(io);  // keeps run() going between timers
    if (auto interval = systemd_watchdog_interval()) {
      watchdog = std::make_unique<boost::asio::steady_timer>(io);
      schedule_watchdog(*interval / 2);
    }
    io_thread = std::thread([this, guard = std::move(guard)] { io.run(); });
  }

  void schedule_watchdog(std::chrono::microseconds every) {
    watchdog->expires_after(every);
    watchdog->async_wait([this, every](const boost::system::error_code& ec) {
      if (ec) return;
      // Keep systemd's watchdog fed only while the training loop turns (a wedged loop then
      // gets the node restarted).
      auto last = std::chrono::nanoseconds(loop_heartbeat_ns.load());
      auto now = Clock::now().time_since_epoch();
      if (now - last < 2 * every) systemd_notify("WATCHDOG=1");
      schedule_watchdog(every);
    });
  }

  void touch_loop() {
    loop_heartbeat_ns.store(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                Clock::now().time_since_epoch())
                                .count());
  }

  int run();
};

Node::Node(const NodeOptions& options) : impl_(std::make_unique<Impl>()) {
  Impl& n = *impl_;
  n.spec = topology::parse_cluster_file(options.config_path);
  n.index = n.spec.index_of(options.node_id);
  if (n.index == n.spec.nodes.size()) {
    std::string ids;
    for (const auto& node : n.spec.nodes) ids += (ids.empty() ? "" : ", ") + node.id;
    throw topology::ConfigError(options.config_path, 0, 0, "",
                                "node \"" + options.node_id + "\" is not in this cluster; its "
                                "nodes are " + ids);
  }
  n.id = options.node_id;
  check_control_endpoint(n.spec, n.index);  // before anything binds: exit 2, not 4
  configure_logging(n.id, options.log_level.value_or(n.spec.run.log_level));
  n.topo = std::make_unique<topology::Topology>(topology::Topology::compile(n.spec));

  n.node_dir = node_directory(n.spec, n.index, options.run_dir);
  n.checkpoint_dir = n.node_dir / "checkpoints";
  {
    // A bad --run-dir or [run] dir (a file in the way, no permission) is the operator's input:
    // exit 2 with the path, so systemd does not restart the node over it.
    std::error_code ec;
    std::filesystem::create_directories(n.checkpoint_dir, ec);
    if (ec) {
      throw topology::ConfigError(options.config_path, 0, 0, "run directory",
                                  "cannot create " + n.checkpoint_dir.string() + ": " + ec.message());
    }
  }
  n.directory_lock = std::make_unique<NodeDirectoryLock>(n.node_dir);
  try {
    n.metrics = std::make_unique<MetricsLog>(n.node_dir / "metrics.jsonl");
  } catch (const std::runtime_error& e) {
    // Like the directory above: something in the way of the node's own file (a directory, no
    // permission) is fixed by the operator, not by a restart.
    throw topology::ConfigError(options.config_path, 0, 0, "run directory", e.what());
  }
  // Holding the lock, this process is the only one that writes checkpoints here: a temporary
  // file is what a crash left mid-write, and would otherwise stay for good.
  for (const auto& unfinished : training::remove_unfinished_checkpoints(n.checkpoint_dir)) {
    spdlog::warn("removed {}: a checkpoint left unfinished when a node died writing it",
                 unfinished.string());
  }

  training::NodeShard shard{n.index, n.spec.nodes.size(), n.spec.seed};
  // A node's own device ([[node]] device) overrides training.device; nothing else in the
  // spec differs between nodes, and nothing outside this node sees the device.
  const topology::NodeSpec& self = n.spec.nodes[n.index];
  if (!self.device.empty()) n.spec.training.device = self.device;
  try {
    n.trainer = std::make_unique<training::Trainer>(n.spec.training, shard);
  } catch (const training::DeviceError& e) {
    if (self.device.empty()) throw;
    throw training::DeviceError(std::string(e.what()) + " (the device is node " + n.id +
                                "'s own, set at " + options.config_path + ":" +
                                std::to_string(self.line) + ")");
  }
  n.device = n.trainer->device();
  n.total_steps = n.trainer->total_steps();
  spdlog::info("cluster {} ({} nodes, {}), mode {}: model {} with {} parameters on {}, {} "
               "training samples, {} steps",
               n.spec.name, n.spec.nodes.size(), topology::to_string(n.topo->kind()),
               n.spec.sync.mode, n.spec.training.model, n.trainer->parameter_count(),
               n.trainer->device(), n.trainer->shard_size(), n.trainer->total_steps());

  for (const std::string& warning : unprotected_endpoint_warnings(n.spec, n.index)) {
    spdlog::warn("{}", warning);
  }

  // This node's CURVE secret key, read once where something needs it: the transport (every
  // mode but local) and an encrypted control socket (README "Security").
  std::string secret_key;
  if (!self.public_key.empty() &&
      (n.spec.sync.mode != "local" || control_uses_curve(n.spec, n.index))) {
    try {
      secret_key = load_secret_key(self);
    } catch (const KeyError& e) {
      throw topology::ConfigError(n.spec.file, self.line, 0,
                                  "node[" + std::to_string(n.index) + "].secret_key_file", e.what());
    }
  }

  const auto& s = n.spec.sync;
  if (s.mode == "local") {
    n.sync = std::make_unique<LocalSync>();
  } else {
    gossip::ZmqTransportOptions t;
    for (const auto& node : n.spec.nodes) {
      t.ids.push_back(node.id);
      t.endpoints.push_back(node.endpoint);
    }
    t.self = n.index;
    t.incarnation = incarnation_now();
    // (The cluster file admits only the names wire_precision_from knows.)
    const auto precision = gossip::wire_precision_from(s.wire_precision).value();
    // Messages carry one fingerprint for the model, the wire precision and the protocol
    // settings every node must share (topology/protocol_fingerprint.h): a node run with an
    // edited copy of the cluster file is refused by the others, with a log line that says so.
    t.policy.fingerprint = gossip::wire_fingerprint(
        topology::protocol_fingerprint(n.spec, n.trainer->fingerprint()), precision);
    if (precision != gossip::WirePrecision::f32) {
      spdlog::info("{} sends {} parameters (wire_precision = \"{}\"): nodes with another "
                   "wire_precision refuse this node's messages as a fingerprint mismatch",
                   s.mode,
                   precision == gossip::WirePrecision::f16 ? "binary16" : "8-bit blockwise",
                   s.wire_precision);
    }
    t.policy.gossip_neighbours.assign(n.spec.nodes.size(), false);
    for (std::size_t j : n.topo->graph().neighbours(n.index)) t.policy.gossip_neighbours[j] = true;
    t.max_payload_bytes = n.trainer->parameter_count() * sizeof(float);
    t.heartbeat = std::chrono::milliseconds(s.heartbeat_ms);
    t.timing.suspect_after = std::chrono::milliseconds(s.suspect_after_ms);
    t.timing.dead_after = std::chrono::milliseconds(s.dead_after_ms);
    t.timing.never_seen_dead_after =
        std::chrono::milliseconds(std::max(s.startup_timeout_ms, s.dead_after_ms));
    t.faults = options.faults;
    if (!secret_key.empty()) {
      for (const auto& node : n.spec.nodes) t.public_keys.push_back(node.public_key);
      t.secret_key = secret_key;
      spdlog::info("CURVE: every connection is encrypted, and only the {} keys of the cluster "
                   "file get in", n.spec.nodes.size());
    }
    switch (topology::collective_links(n.spec)) {
      case topology::CollectiveLinks::tcp:
        for (const auto& node : n.spec.nodes) {
          t.ring_link_hosts.push_back(topology::tcp_endpoint_host(node.endpoint).value());
        }
        t.ring_link_port = static_cast<std::uint16_t>(self.ring_link_port);
        break;
      case topology::CollectiveLinks::unix_socket:
        for (const auto& node : n.spec.nodes) {
          t.ring_link_socket_paths.push_back(
              topology::ring_link_socket_path(topology::ipc_endpoint_path(node.endpoint).value()));
        }
        break;
      case topology::CollectiveLinks::zeromq:
        break;
    }
    n.transport = std::make_unique<gossip::ZmqTransport>(std::move(t));
    if (auto* links = n.transport->ring_links()) {
      spdlog::info("{} travel over plain {} links ({}); set [sync] "
                   "collective_transport = \"zeromq\" to send them through ZeroMQ",
                   s.mode == "gossip" && links->carries_gossip()
                       ? "gossip payloads and ring allreduce chunks"
                       : "ring allreduce chunks",
                   links->unix_sockets() ? "Unix-domain socket" : "TCP", links->where());
    }
    if (s.mode == "gossip") {
      GossipSyncOptions g;
      g.period = s.period;
      g.period_schedule = s.period_schedule;
      g.staleness = s.staleness;
      g.precision = precision;
      g.round_timeout = std::chrono::milliseconds(s.round_timeout_ms);
      g.startup_timeout = std::chrono::milliseconds(s.startup_timeout_ms);
      g.final_rounds = s.final_rounds;
      g.collective_timeout = std::chrono::milliseconds(s.collective_timeout_ms);
      g.consensus_bound = s.consensus_bound;
      g.round_metrics_interval = std::chrono::milliseconds(n.spec.run.round_metrics_interval_ms);
      g.final_allreduce = s.final_allreduce;
      g.total_steps = n.trainer->total_steps();
      n.sync = std::make_unique<GossipSync>(*n.transport, *n.topo, g, *n.metrics);
    } else if (s.mode == "allreduce") {
      AllreduceSyncOptions a;
      a.gradients = s.allreduce == "gradients";
      a.period = s.period;
      a.collective_timeout = std::chrono::milliseconds(s.collective_timeout_ms);
      a.round_timeout = std::chrono::milliseconds(s.round_timeout_ms);
      a.startup_timeout = std::chrono::milliseconds(s.startup_timeout_ms);
      a.final_allreduce = s.final_allreduce;
      n.sync = std::make_unique<AllreduceSync>(*n.transport, *n.topo, a, *n.metrics);
    } else if (s.mode == "dynamic") {
      DynamicSyncOptions d;
      d.period = s.period;
      d.delta = s.delta;
      d.delta_mode = s.delta_mode;
      d.budget_bytes_per_epoch = s.budget_bytes_per_epoch;
      d.reply_timeout = std::chrono::milliseconds(s.reply_timeout_ms);
      d.max_lead_steps = s.max_lead_steps;
      d.startup_timeout = std::chrono::milliseconds(s.startup_timeout_ms);
      d.collective_timeout = std::chrono::milliseconds(s.collective_timeout_ms);
      d.final_allreduce = s.final_allreduce;
      d.precision = precision;
      n.sync = std::make_unique<DynamicSync>(*n.transport, *n.topo, d, *n.metrics);
    } else {
      throw topology::ConfigError(n.spec.file, s.line, 0, "sync.mode",
                                  "\"" + s.mode + "\" is not implemented in this build");
    }
  }

  if (auto loaded = n.trainer->load_latest_checkpoint(n.checkpoint_dir.string())) {
    n.sync->restore_state(loaded->extras);
    n.last_checkpoint = loaded->path;
    n.step = n.trainer->step_count();
    n.epoch = n.trainer->epoch();
    spdlog::info("resumed from {} at step {}", loaded->path, loaded->step);
    n.metrics->write({{"event", "resumed"}, {"step", loaded->step}, {"path", loaded->path}});
  }

  std::optional<ControlCurve> control_curve;
  if (control_uses_curve(n.spec, n.index)) {
    // A tcp:// control socket of a keyed cluster answers only the holders of node keys: it
    // can stop and pause training, so it gets the protection the data plane has.
    ControlCurve curve;
    curve.secret_key = secret_key;
    for (const auto& node : n.spec.nodes) curve.admitted.emplace(node.public_key, node.id);
    control_curve = std::move(curve);
    spdlog::info("control socket {} is encrypted (CURVE): it answers holders of the cluster "
                 "file's node keys only",
                 control_endpoint(n.spec, n.index));
  }
  n.control = std::make_unique<ControlServer>(
      control_endpoint(n.spec, n.index),
      [this](const ControlRequest& request, ReplyToken token) {
        impl_->handle_control(request, std::move(token));
      },
      std::move(control_curve));
  n.control->start();  // n.control is set: the handler replies through it
  if (!n.spec.nodes[n.index].metrics.empty()) {
    try {
      n.metrics_server = std::make_unique<MetricsServer>(
          n.io, n.spec.nodes[n.index].metrics,
          [this] { return render_prometheus(impl_->status_json(), impl_->peers_json()); });
    } catch (const std::exception& e) {
      throw ControlError(e.what());
    }
    spdlog::info("Prometheus metrics at http://{}/metrics", n.spec.nodes[n.index].metrics);
  }
  n.start_io_thread();

  std::lock_guard lock(g_signal_mutex);
  g_running_node = this;
  if (g_pending_signal != 0) {
    spdlog::info("received {} while starting", strsignal(g_pending_signal));
    n.request_stop();
  }
}

Node::~Node() {
  {
    std::lock_guard lock(g_signal_mutex);
    if (g_running_node == this) g_running_node = nullptr;
  }
  impl_->io.stop();
  if (impl_->io_thread.joinable()) impl_->io_thread.join();
  impl_->metrics_server.reset();
  // Order matters: the control thread reads the sync strategy and the transport.
  impl_->control.reset();
  impl_->sync.reset();
  impl_->transport.reset();
}

void Node::request_stop() { impl_->request_stop(); }

int Node::run() { return impl_->run(); }

int Node::Impl::run() {
  metrics->write({{"event", "start"},
                  {"node", id},
                  {"cluster", spec.name},
                  {"mode", sync->mode()},
                  {"model", spec.training.model},
                  {"parameters", trainer->parameter_count()},
                  {"shard_size", trainer->shard_size()},
                  {"total_steps", trainer->total_steps()},
                  {"device", trainer->device()},
                  {"pid", ::getpid()}});
  systemd_notify("READY=1\nSTATUS=waiting for neighbours");
  set_state("waiting for neighbours");
  touch_loop();
  sync->set_stop_check([this] {
    touch_loop();  // waiting for peers is progress: keep the watchdog fed
    return stop_requested.load();
  });
  sync->start(*trainer);
  phase.store(Phase::training);
  set_state("training");
  const std::int64_t first_step = trainer->step_count();
  const std::int64_t first_samples = trainer->samples_seen();
  const double training_started = metrics->seconds();
  double eval_seconds = 0;  // time spent evaluating inside the loop, not training
  metrics->write({{"event", "training"}, {"step", first_step}});

  const std::int64_t steps_per_epoch = std::max<std::int64_t>(1, trainer->steps_per_epoch());
  const std::int64_t eval_every = spec.training.eval_every;
  const std::int64_t checkpoint_every = spec.training.checkpoint_every;
  auto window_start = Clock::now();
  std::int64_t window_samples = 0;
  auto last_report = Clock::now();
  auto last_notify = Clock::now();
  double smoothed_loss = NAN;
  bool stopped_early = false;
  bool warned_diverged = false;

  while (true) {
    touch_loop();
    serve_checkpoint_requests();
    if (stop_requested.load()) {
      stopped_early = !trainer->finished();
      break;
    }
    if (paused.load()) {
      set_state("paused");
      // Heartbeats say so: neighbours run their rounds without this node instead of waiting
      // round_timeout for it every round, and rings re-form without it. On resume it rejoins
      // like a node that stalled (in gossip, at its neighbours' round and step).
      if (transport) transport->set_paused(true);
      std::unique_lock lock(commands_mutex);
      commands_changed.wait_for(lock, std::chrono::milliseconds(200));
      continue;
    }
    if (trainer->finished()) break;
    set_state("training");
    if (transport) transport->set_paused(false);

    training::StepResult r = sync->step(*trainer);
    sync->after_step(*trainer);
    window_samples += r.samples;
    if (!std::isfinite(r.loss) && !warned_diverged) {
      // The neighbours refuse this node's non-finite parameters (non_finite), so the damage
      // stays here; the operator should see why.
      spdlog::error("training diverged at step {}: the loss is {}; lower lr or check the data",
                    r.step, r.loss);
      metrics->write({{"event", "diverged"}, {"step", r.step}});
      warned_diverged = true;
    }
    smoothed_loss = std::isfinite(smoothed_loss) ? 0.98 * smoothed_loss + 0.02 * r.loss : r.loss;

    auto now = Clock::now();
    double window_seconds = std::chrono::duration<double>(now - window_start).count();
    {
      std::lock_guard lock(status_mutex);
      step = r.step;
      epoch = r.epoch;
      loss = smoothed_loss;
      lr = r.lr;
      if (window_seconds >= 1.0) samples_per_s = static_cast<double>(window_samples) / window_seconds;
    }
    if (now - last_report >= std::chrono::seconds(1)) {
      metrics->write({{"event", "train"},
                      {"step", r.step},
                      {"epoch", r.epoch},
                      {"loss", smoothed_loss},
                      {"lr", r.lr},
                      {"samples_per_s", static_cast<double>(window_samples) / window_seconds}});
      last_report = now;
      window_start = now;
      window_samples = 0;
    }
    if (now - last_notify >= std::chrono::seconds(5)) {
      systemd_notify("STATUS=step " + std::to_string(r.step) + "/" +
                     std::to_string(trainer->total_steps()) + ", loss " +
                     std::to_string(smoothed_loss));
      last_notify = now;
    }
    bool eval_due = eval_every > 0 ? r.step % eval_every == 0 : r.step % steps_per_epoch == 0;
    if (eval_due && !trainer->finished()) eval_seconds += evaluate(eval_every > 0 ? "periodic" : "epoch");
    if (checkpoint_every > 0 && r.step % checkpoint_every == 0) write_scheduled_checkpoint();
  }

  // Training throughput over the loop alone: no start-up, no evaluation.
  const double train_seconds = metrics->seconds() - training_started - eval_seconds;
  const std::int64_t trained_samples = trainer->samples_seen() - first_samples;
  systemd_notify("STOPPING=1");
  set_state(stopped_early ? "stopping" : "finishing");
  // What the sync mode does after the last step (final rounds, a final allreduce) is timed
  // apart from the loop, so that a benchmark can charge it to the run.
  const double finish_started = metrics->seconds();
  sync->finish(*trainer, stopped_early);
  const double finish_seconds = metrics->seconds() - finish_started;
  if (!stopped_early) evaluate("final");
  // The final checkpoint is the run's result (and where a restart resumes): if it cannot be
  // written, the node says so and exits with a failure, after its summary.
  std::string path;
  std::string final_error;
  try {
    path = write_checkpoint();
  } catch (const std::exception& e) {
    final_error = e.what();
    spdlog::error("final checkpoint at step {} not written: {}; the newest checkpoint is {}",
                  trainer->step_count(), final_error,
                  last_checkpoint.empty() ? "none" : last_checkpoint);
  }
  {
    // Requests that came after the loop's last look are answered with the final checkpoint.
    std::deque<ReplyToken> late;
    {
      std::lock_guard lock(commands_mutex);
      phase.store(Phase::ended);
      late.swap(checkpoint_requests);
    }
    for (const auto& token : late) {
      control->reply(token, final_error.empty()
                                ? ok_reply({{"path", path}, {"step", trainer->step_count()}})
                                : error_reply("checkpoint failed: " + final_error));
    }
  }
  double seconds = metrics->seconds();
  nlohmann::json summary = status_json();
  summary["event"] = "summary";
  summary["finished"] = !stopped_early;
  summary["wall_seconds"] = seconds;
  summary["train_seconds"] = train_seconds;
  summary["finish_seconds"] = finish_seconds;
  summary["trained_samples"] = trained_samples;
  summary["trained_steps"] = trainer->step_count() - first_step;
  summary["checkpoint"] = path.empty() ? nlohmann::json(nullptr) : nlohmann::json(path);
  if (!final_error.empty()) summary["checkpoint_error"] = final_error;
  metrics->write(summary);
  if (!final_error.empty()) {
    set_state("failed");
    return kExitFailure;
  }
  spdlog::info("{} at step {} after {:.1f} s; checkpoint {}",
               stopped_early ? "stopped" : "finished", trainer->step_count(), seconds, path);
  set_state(stopped_early ? "stopped" : "finished");
  return kExitOk;
}

}  // namespace starling::daemon
