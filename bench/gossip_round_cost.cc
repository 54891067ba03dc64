// What one gossip round costs in CPU, apart from training: 4 nodes (4 ZmqTransports in this
// process, on loopback TCP) run rounds of the one-peer exponential graph back to back, and
// the process's CPU time (all threads: the nodes', the transports' network threads, ZeroMQ's
// I/O threads, and the kernel's work for them) is divided by rounds and nodes. The nodes'
// own threads are timed phase by phase (the snapshot, its send, the wait, the apply pass);
// the rest of the CPU is the transport's.
//
//   build/bench/gossip_round_cost --floats 262144 --rounds 300 --blocks 5
//
// Prints one JSON line per block and the medians over blocks (bench/RESULTS-cluster.md,
// "What a round costs, apart from training").
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <array>
#include <ctime>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "gossip/gossip_averager.h"
#include "gossip/malloc_tuning.h"
#include "gossip/zmq_transport.h"
#include "support/ports.h"
#include "topology/cluster_file.h"
#include "topology/topology.h"

namespace {

using namespace starling;
using Clock = std::chrono::steady_clock;
constexpr std::size_t kNodes = 4;
constexpr std::uint64_t kFingerprint = 0xB0B;


double process_cpu_seconds() {
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double thread_cpu_seconds() {
  timespec t{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + t.tv_nsec * 1e-9;
}

struct Block {
  double cpu_ms_per_round = 0;   // all threads, per node and round
  // Of which the node's own thread spent, per round: taking the snapshot (narrowing it to
  // binary16), sending it (its checksum), the wait for the neighbour, and the apply pass.
  double snapshot_ms = 0, send_ms = 0, wait_ms = 0, apply_ms = 0;
  double wall_ms_per_round = 0;
};

// links: payloads over ring links (gossip/ring_links.h) written and read by the nodes' own
// threads; else through ZeroMQ (the network thread and ZeroMQ's I/O thread on each side).
Block run_block(std::size_t floats, std::size_t rounds, gossip::WirePrecision precision, bool links) {
  std::string text = "[cluster]\nname = \"cost\"\n[topology]\nkind = \"one-peer-exponential\"\n";
  std::vector<std::string> ids, endpoints;
  // Below the ephemeral range, where the nodes' ring-link listeners (port 0) cannot take one
  // before its node binds it (tests/support/ports.h).
  std::vector<int> ports;
  for (std::size_t i = 0; i < kNodes; ++i) ports.push_back(testing::free_tcp_port());
  for (std::size_t i = 0; i < kNodes; ++i) {
    ids.push_back("n" + std::to_string(i));
    endpoints.push_back("tcp://127.0.0.1:" + std::to_string(ports[i]));
    text += "[[node]]\nid = \"" + ids[i] + "\"\nendpoint = \"" + endpoints[i] + "\"\n";
  }
  const auto spec = topology::parse_cluster_text(text, "cost.toml");
  const auto topo = topology::Topology::compile(spec);
  std::vector<std::unique_ptr<gossip::ZmqTransport>> nodes;
  for (std::size_t i = 0; i < kNodes; ++i) {
    gossip::ZmqTransportOptions o;
    o.ids = ids;
    o.endpoints = endpoints;
    o.self = i;
    o.incarnation = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count()) + i;
    o.policy.fingerprint = kFingerprint;
    o.policy.gossip_neighbours.assign(kNodes, false);
    for (std::size_t j : topo.graph().neighbours(i)) o.policy.gossip_neighbours[j] = true;
    o.max_payload_bytes = floats * sizeof(float);
    o.heartbeat = std::chrono::milliseconds(50);
    if (links) o.ring_link_hosts.assign(kNodes, "127.0.0.1");
    nodes.push_back(std::make_unique<gossip::ZmqTransport>(o));
  }
  // Ready: a round trip to every neighbour, and (links) every neighbour's link port.
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  auto ready = [&] {
    for (std::size_t i = 0; i < kNodes; ++i) {
      for (std::size_t j : topo.graph().neighbours(i)) {
        if (!nodes[i]->peers().has_round_trip(j)) return false;
        if (links && nodes[i]->peers().ring_port(j) == 0) return false;
      }
    }
    return true;
  };
  while (!ready()) {
    if (Clock::now() > deadline) throw std::runtime_error("the nodes did not connect");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  std::vector<std::vector<float>> models(kNodes, std::vector<float>(floats));
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  for (auto& model : models) std::generate(model.begin(), model.end(), [&] { return normal(rng); });
  std::vector<std::unique_ptr<gossip::GossipAverager>> averagers;
  for (auto& node : nodes) {
    averagers.push_back(std::make_unique<gossip::GossipAverager>(
        *node, topo, std::chrono::milliseconds(5000), gossip::GossipAverager::kDefaultWindow,
        precision));
  }
  const double cpu_before = process_cpu_seconds();
  const auto wall_before = Clock::now();
  std::vector<std::thread> threads;
  std::vector<std::array<double, 4>> phases(kNodes, std::array<double, 4>{});
  for (std::size_t i = 0; i < kNodes; ++i) {
    threads.emplace_back([&, i] {
      for (std::size_t r = 0; r < rounds; ++r) {
        double t0 = thread_cpu_seconds();
        gossip::WireSnapshot snapshot = averagers[i]->snapshot_of(models[i]);
        double t1 = thread_cpu_seconds();
        gossip::PendingRound pending = averagers[i]->begin_exchange(r, snapshot);
        double t2 = thread_cpu_seconds();
        averagers[i]->finish_exchange(pending);
        double t3 = thread_cpu_seconds();
        averagers[i]->add_round_delta(pending.exchange, snapshot, models[i]);
        double t4 = thread_cpu_seconds();
        phases[i][0] += t1 - t0;
        phases[i][1] += t2 - t1;
        phases[i][2] += t3 - t2;
        phases[i][3] += t4 - t3;
      }
    });
  }
  for (auto& t : threads) t.join();
  Block block;
  double* fields[] = {&block.snapshot_ms, &block.send_ms, &block.wait_ms, &block.apply_ms};
  for (std::size_t k = 0; k < 4; ++k) {
    for (std::size_t i = 0; i < kNodes; ++i) *fields[k] += 1e3 * phases[i][k] / (rounds * kNodes);
  }
  block.cpu_ms_per_round = 1e3 * (process_cpu_seconds() - cpu_before) / (rounds * kNodes);
  block.wall_ms_per_round =
      std::chrono::duration<double, std::milli>(Clock::now() - wall_before).count() / rounds;
  return block;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : (v[(v.size() - 1) / 2] + v[v.size() / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CPU per gossip round of 4 nodes on loopback, apart from training"};
  std::size_t floats = 262144, rounds = 300, blocks = 4;
  std::string precision_name = "f16";
  app.add_option("--floats", floats, "model size in floats (the mlp: 262144)");
  app.add_option("--rounds", rounds, "rounds per block");
  app.add_option("--blocks", blocks, "blocks of each path, alternating (fresh transports each)");
  app.add_option("--precision", precision_name, "f32, f16 or int8")
      ->check(CLI::IsMember({"f16", "f32", "int8"}));
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);  // not a line per peer and block
  gossip::tune_malloc_for_large_messages();  // as starlingd does
  const auto precision = gossip::wire_precision_from(precision_name).value();  // checked above
  struct Series {
    std::vector<double> cpu, wall, snapshot, send, wait, apply;
  } series[2];  // [0]: ZeroMQ, [1]: ring links
  for (std::size_t b = 0; b < 2 * blocks; ++b) {
    // zeromq, links, links, zeromq, zeromq, links, ...: neither path always goes first.
    const bool links = (b % 2 == 1) != ((b / 2) % 2 == 1);
    Block block = run_block(floats, rounds, precision, links);
    Series& out = series[links];
    out.cpu.push_back(block.cpu_ms_per_round);
    out.wall.push_back(block.wall_ms_per_round);
    out.snapshot.push_back(block.snapshot_ms);
    out.send.push_back(block.send_ms);
    out.wait.push_back(block.wait_ms);
    out.apply.push_back(block.apply_ms);
    std::cout << nlohmann::json{{"block", b},
                                {"payloads", links ? "ring links" : "zeromq"},
                                {"precision", precision_name},
                                {"floats", floats},
                                {"cpu_ms_per_node_round", block.cpu_ms_per_round},
                                {"wall_ms_per_round", block.wall_ms_per_round},
                                {"node_thread_ms",
                                 {{"snapshot", block.snapshot_ms},
                                  {"send", block.send_ms},
                                  {"wait", block.wait_ms},
                                  {"apply", block.apply_ms}}}}
                     .dump()
              << std::endl;
  }
  for (int links = 0; links < 2; ++links) {
    const Series& x = series[links];
    const double node_thread = median(x.snapshot) + median(x.send) + median(x.wait) + median(x.apply);
    std::cout << (links ? "ring links" : "zeromq    ") << ": medians per node and round: CPU "
              << median(x.cpu) << " ms (node thread: snapshot " << median(x.snapshot) << ", send "
              << median(x.send) << ", wait " << median(x.wait) << ", apply " << median(x.apply)
              << "; the rest " << median(x.cpu) - node_thread << "); wall per round "
              << median(x.wall) << " ms\n";
  }
  std::cout << "ring links / zeromq, CPU per round: " << median(series[1].cpu) / median(series[0].cpu)
            << "\n";
}
