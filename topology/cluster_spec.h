#pragma once
// Plain data parsed from a cluster file (see cluster_file.h). Nothing here does I/O or checks
// invariants across sections; compile() in topology.h and the daemon turn these into runtime
// objects. Every struct keeps the source line it came from so later checks can point at it.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace starling::topology {

enum class TopologyKind { ring, torus, hypercube, exponential, one_peer_exponential, complete, edges };
enum class WeightScheme { metropolis, uniform, explicit_matrix };

std::string to_string(TopologyKind kind);
std::string to_string(WeightScheme scheme);

struct TopologySpec {
  TopologyKind kind = TopologyKind::ring;
  WeightScheme weights = WeightScheme::metropolis;
  int rows = 0;  // torus only
  int cols = 0;  // torus only
  // kind = "edges": undirected edges as node indices, with the line of each for errors.
  std::vector<std::pair<std::size_t, std::size_t>> edges;
  std::vector<int> edge_lines;
  // weights = "explicit": a dense n x n row-stochastic matrix in node order.
  std::vector<std::vector<double>> matrix;
  int line = 0;         // line of [topology]
  int weights_line = 0;  // line of `weights` (or of `matrix`), for weight errors
};

struct NodeSpec {
  std::string id;          // unique; names the node everywhere (logs, status, wire routing id)
  std::string endpoint;    // data endpoint the node binds, e.g. tcp://127.0.0.1:7100
  std::string control;     // control endpoint (ipc:// or tcp://); empty: default runtime path
  std::string metrics;     // optional host:port for the Prometheus endpoint; empty: off
  // Optional: this node's training device, in place of training.device (e.g. a GPU each for
  // the nodes of one multi-GPU machine). Empty: training.device.
  std::string device;
  // CURVE (README "Security"): the node's public key, Z85-encoded (40 characters); set on every
  // node or on none. secret_key_file: where this node's host keeps its secret key (made by
  // `starlingctl keygen`), resolved against the cluster file's directory; only the node
  // itself reads it.
  std::string public_key;
  std::string secret_key_file;
  // The port this node's ring link listens on (gossip/ring_links.h), on its endpoint's host;
  // 0: one the kernel picks. For firewalls that admit only listed ports.
  int ring_link_port = 0;
  int ring_link_port_line = 0;
  int line = 0;
};

enum class PartitionKind { iid, dirichlet, shards };

struct PartitionSpec {
  PartitionKind kind = PartitionKind::iid;
  double alpha = 0.0;  // dirichlet
  int shards = 0;      // shards: label shards per node
};

struct TrainingSpec {
  std::string model = "mlp";               // logreg | mlp | cnn
  std::string dataset = "fashion-mnist";   // fashion-mnist | mnist | synthetic
  std::string data_dir;                    // empty: the dataset's default directory
  PartitionSpec partition;
  std::int64_t batch_size = 32;
  double lr = 0.05;
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 0.0;
  std::string lr_schedule = "constant";    // constant | step | cosine
  std::int64_t warmup_steps = 0;           // linear warmup, applies before any schedule
  std::vector<double> milestones;          // step schedule: epochs at which lr *= gamma
  double gamma = 0.1;
  double epochs = 1.0;                     // may be fractional
  std::int64_t max_steps = 0;              // 0: no limit besides epochs
  std::int64_t max_train_samples = 0;      // 0: whole training set (tests use small subsets)
  std::int64_t eval_every = 0;             // steps between evaluations; 0: at epoch ends only
  std::int64_t eval_batch_size = 1000;
  std::string device = "auto";             // auto | cpu | cuda | cuda:N (auto: training/device.h)
  std::int64_t threads = 1;                // intra-op threads per node
  std::int64_t checkpoint_every = 0;       // steps; 0: only at the end and on stop
  std::int64_t keep_checkpoints = 3;
  int line = 0;
};

// One phase of a gossip period schedule: rounds every `period` steps until `until_step`
// (daemon/round_schedule.h).
struct PeriodPhase {
  std::int64_t until_step = 0;
  std::int64_t period = 8;
  bool operator==(const PeriodPhase&) const = default;
};

struct SyncSpec {
  std::string mode = "local";              // see cluster_file.cc for the modes this build has
  std::int64_t period = 8;                 // H: local steps between gossip rounds
  // Gossip: other periods before given steps; `period` applies after the last phase.
  std::vector<PeriodPhase> period_schedule;
  // Gossip rounds in flight while training goes on: 0 exchanges synchronously at each sync
  // point; 1 applies a round's mix at most one period after its snapshot. (More would apply
  // corrections computed from snapshots that miss each other's, and the delayed mixing is
  // unstable: see daemon/gossip_sync.h.)
  std::int64_t staleness = 1;
  // Gossip and dynamic averaging: precision of the parameters on the wire. "f16" sends
  // binary16, half the bytes (gossip/gossip_averager.h says why that never moves the cluster's
  // average model; gossip/dynamic_averager.h how balancings send drifts from the reference).
  // "int8" (gossip only) sends 8-bit codes with a scale per block of 256, a quarter of the
  // bytes (gossip/int8_blocks.h).
  std::string wire_precision = "f32";
  std::int64_t round_timeout_ms = 2000;    // a neighbour later than this is left out of a round
  std::int64_t heartbeat_ms = 200;
  std::int64_t suspect_after_ms = 1000;    // silence before a peer is suspect
  std::int64_t dead_after_ms = 3000;       // silence before a peer is dead
  std::int64_t startup_timeout_ms = 60000; // wait this long for neighbours before training alone
  std::int64_t final_rounds = 0;           // extra gossip rounds, without training, at the end
  bool final_allreduce = false;            // end with one allreduce of all live nodes' models
  std::string allreduce = "gradients";     // allreduce mode: gradients every step | parameters
  std::int64_t collective_timeout_ms = 10000;  // a ring allreduce gives up after this
  // How ring allreduce chunks and gossip payloads travel: "tcp" over plain TCP links between
  // nodes (gossip/ring_links.h), "unix" over Unix-domain socket links between ipc:// nodes,
  // "zeromq" through the ZeroMQ transport, "auto" tcp where every endpoint is tcp://, unix
  // where every endpoint is ipc://, and zeromq otherwise or with CURVE keys (links are not
  // encrypted). See collective_links().
  std::string collective_transport = "auto";
  double consensus_bound = 0.0;            // gossip: ask for one allreduce above this (0: off)
  double delta = 1.0;                      // dynamic: threshold on ||x - r||^2 (or factor)
  std::string delta_mode = "absolute";     // dynamic: absolute | relative | budget
  double budget_bytes_per_epoch = 0.0;     // dynamic, delta_mode = "budget"
  std::int64_t reply_timeout_ms = 2000;    // dynamic: a balancing waits this long for members
  // Dynamic: a node this many steps ahead of its slowest active peer (by the steps heartbeats
  // report) waits at its next check; 0 lets nodes drift apart without bound.
  std::int64_t max_lead_steps = 0;
  int line = 0;
};

struct RunSpec {
  std::string dir;  // node output goes to <dir>/<node id>; empty: ./runs/<cluster name>
  std::string log_level = "info";
  // At most one `gossip` line in metrics.jsonl per this many ms, besides the rounds that left a
  // neighbour out (always written); 0: one per round. A round every 8 steps is hundreds of
  // lines a second on a fast node: over days, gigabytes.
  std::int64_t round_metrics_interval_ms = 0;
  int line = 0;
};

struct ClusterSpec {
  std::string file;  // where it came from (a path, or "<embedded default>")
  std::string name;
  std::uint64_t seed = 1;
  TopologySpec topology;
  std::vector<NodeSpec> nodes;
  TrainingSpec training;
  SyncSpec sync;
  RunSpec run;

  // Index of the node with this id, or nodes.size() if there is none.
  std::size_t index_of(const std::string& id) const;
};

}  // namespace starling::topology
