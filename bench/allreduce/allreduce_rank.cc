// allreduce_rank: one rank of Starling's ring allreduce over ZeroMQ, for the allreduce
// benchmark (bench/allreduce/) and the multi-process fault test. Reads a cluster file for the
// node ids and endpoints, waits until every member is connected, then runs collectives and
// prints one JSON line per size with the timings.
//
//   allreduce_rank --config FILE --node ID --sizes 1048576,16777216 --iterations 20
//
// With --verify every rank fills its buffer with values derived from its index, checks every
// result against the exact sum, and checks after a failed collective that its input is
// untouched; it exits 3 at the first failure (after printing why), 4 on a wrong result.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "gossip/ring_allreduce.h"
#include "gossip/malloc_tuning.h"
#include "gossip/zmq_transport.h"
#include "topology/cluster_file.h"

using namespace starling;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<std::size_t> parse_sizes(const std::string& text) {
  std::vector<std::size_t> sizes;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) sizes.push_back(std::stoull(item));
  return sizes;
}

// Value of element k on rank r: exact in float, so sums are exact too.
float value(std::size_t rank, std::size_t k) { return static_cast<float>((rank + 1) * (k % 1024)); }

}  // namespace

int main(int argc, char** argv) {
  gossip::tune_malloc_for_large_messages();
  CLI::App app{"One rank of Starling's ring allreduce (benchmark and fault-test driver)"};
  std::string config, node, sizes_text = "1048576";
  int iterations = 10, warmup = 2, timeout_ms = 30000;
  std::size_t chunk_bytes = 0;
  bool verify = false, sum = false;
  app.add_option("--config", config)->required();
  app.add_option("--node", node)->required();
  app.add_option("--sizes", sizes_text, "buffer sizes in bytes, comma-separated");
  app.add_option("--iterations", iterations);
  app.add_option("--warmup", warmup);
  app.add_option("--timeout-ms", timeout_ms);
  app.add_option("--chunk-bytes", chunk_bytes, "0: chosen from the buffer size");
  app.add_flag("--verify", verify, "check results and input integrity; exit at the first failure");
  app.add_flag("--sum", sum, "sum instead of mean");
  std::string links = "tcp";
  app.add_option("--links", links,
                 "how chunks travel: tcp (plain TCP ring links; tcp:// endpoints only), unix "
                 "(Unix-domain socket links; ipc:// endpoints only) or zeromq")
      ->check(CLI::IsMember({"tcp", "unix", "zeromq"}));
  CLI11_PARSE(app, argc, argv);

  auto spec = topology::parse_cluster_file(config);
  const std::size_t self = spec.index_of(node);
  if (self == spec.nodes.size()) {
    std::cerr << "allreduce_rank: no node " << node << " in " << config << "\n";
    return 2;
  }
  const auto sizes = parse_sizes(sizes_text);
  const std::size_t largest = *std::max_element(sizes.begin(), sizes.end());
  gossip::ZmqTransportOptions o;
  for (const auto& n : spec.nodes) {
    o.ids.push_back(n.id);
    o.endpoints.push_back(n.endpoint);
  }
  o.self = self;
  o.incarnation = static_cast<std::uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
  o.policy.fingerprint = 0xA11EDC;
  o.policy.gossip_neighbours.assign(o.ids.size(), false);
  o.max_payload_bytes = std::max<std::size_t>(largest, 1 << 20);
  o.heartbeat = std::chrono::milliseconds(100);
  o.timing.suspect_after = std::chrono::milliseconds(1000);
  o.timing.dead_after = std::chrono::milliseconds(2000);
  o.mailbox_per_sender_limit = 1024;
  // The links' address of every node: its endpoint's host (tcp) or a path beside it (unix).
  const bool tcp = links == "tcp";
  for (const auto& n : spec.nodes) {
    if (links == "zeromq") break;
    auto where = tcp ? topology::tcp_endpoint_host(n.endpoint) : topology::ipc_endpoint_path(n.endpoint);
    if (!where) {
      std::cerr << "allreduce_rank: --links " << links << " needs " << (tcp ? "tcp://" : "ipc://")
                << " endpoints; " << n.id << " has " << n.endpoint << "\n";
      return 2;
    }
    if (tcp) {
      o.ring_link_hosts.push_back(*where);
    } else {
      o.ring_link_socket_paths.push_back(topology::ring_link_socket_path(*where));
    }
  }
  gossip::ZmqTransport transport(o);
  gossip::AllreduceOptions options;
  options.timeout = std::chrono::milliseconds(timeout_ms);
  options.mean = !sum;
  options.chunk_bytes = chunk_bytes;
  gossip::RingAllreduce ring(transport, options);

  // Start together: every member heard, every round trip measured.
  std::vector<std::size_t> members(o.ids.size());
  for (std::size_t i = 0; i < members.size(); ++i) members[i] = i;
  const auto connect_deadline = Clock::now() + std::chrono::seconds(60);
  while (true) {
    auto table = transport.peers().snapshot();
    bool all = true;
    for (std::size_t i = 0; i < table.size(); ++i) {
      if (i != self && (table[i].state != gossip::PeerState::alive || table[i].rtt_ms < 0)) all = false;
    }
    if (all) break;
    if (Clock::now() > connect_deadline) {
      std::cerr << "allreduce_rank: peers did not connect within 60 s\n";
      return 2;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }

  std::uint64_t tag = 1;
  for (std::size_t bytes : sizes) {
    const std::size_t n = bytes / sizeof(float);
    std::vector<float> in(n), out(n);
    for (std::size_t k = 0; k < n; ++k) in[k] = value(self, k);
    const std::vector<float> original = verify ? in : std::vector<float>{};
    std::vector<double> seconds;
    std::uint64_t sent = 0;
    for (int it = 0; it < warmup + iterations; ++it) {
      auto result = ring.run(tag++, members, in, out);
      if (!result.ok) {
        nlohmann::json line = {{"node", node}, {"bytes", bytes}, {"ok", false}, {"error", result.error},
                               {"iteration", it}};
        if (verify) line["input_intact"] = in == original;
        std::cout << line.dump() << std::endl;
        return 3;
      }
      if (verify) {
        const double ranks = static_cast<double>(members.size());
        for (std::size_t k = 0; k < n; k += 1 + n / 4096) {
          double expected = (k % 1024) * ranks * (ranks + 1) / 2.0 / (sum ? 1.0 : ranks);
          if (std::abs(out[k] - expected) > 1e-3 * std::max(1.0, std::abs(expected))) {
            std::cout << nlohmann::json({{"node", node}, {"ok", false}, {"error", "wrong result"},
                                         {"element", k}, {"got", out[k]}, {"expected", expected}})
                             .dump()
                      << std::endl;
            return 4;
          }
        }
        std::cout << nlohmann::json({{"node", node}, {"bytes", bytes}, {"ok", true}, {"iteration", it}})
                         .dump()
                  << std::endl;
      }
      if (it >= warmup) {
        seconds.push_back(std::chrono::duration<double>(result.elapsed).count());
        sent = result.payload_bytes_sent;
      }
    }
    std::sort(seconds.begin(), seconds.end());
    double median = seconds[seconds.size() / 2];
    std::cout << nlohmann::json({{"node", node},
                                 {"world", members.size()},
                                 {"bytes", bytes},
                                 {"median_s", median},
                                 {"min_s", seconds.front()},
                                 {"max_s", seconds.back()},
                                 {"algbw_gbps", static_cast<double>(bytes) / median / 1e9},
                                 {"payload_bytes_sent", sent}})
                     .dump()
              << std::endl;
  }
  return 0;
}
