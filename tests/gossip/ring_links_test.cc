// Ring allreduce and gossip payloads over ring links (plain TCP on loopback), with the
// in-process fake network for everything else (aborts, liveness): exact results, the
// bandwidth-optimal byte count, links that survive failed collectives, gossip frames and
// chunks on one link, and streams that lie.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include <atomic>
#include <future>
#include <random>
#include <thread>

#include "gossip/checksum.h"
#include "gossip/fake_transport.h"
#include "gossip/gossip_averager.h"
#include "gossip/half_float.h"
#include "topology/cluster_file.h"
#include "topology/topology.h"
#include "gossip/ring_allreduce.h"
#include "ring_test_support.h"
#include "gossip/ring_links.h"
#include "training/temp_dir.h"

namespace starling::gossip {
namespace {

using namespace std::chrono_literals;
using namespace ring_testing;  // names, random_inputs, plain_sum, expect_reduced, ...

// A fake transport with real ring links: chunks go over loopback TCP, the rest through the
// fake network.
// With `socket_paths`, the links are Unix-domain sockets at those paths instead.
class LinkedTransport final : public Transport {
 public:
  LinkedTransport(FakeTransport& inner, std::size_t n, FaultInjection faults = {},
                  std::vector<std::string> socket_paths = {})
      : inner_(inner) {
    RingLinksOptions o;
    o.self = inner.self();
    if (socket_paths.empty()) {
      o.hosts.assign(n, "127.0.0.1");
    } else {
      o.socket_paths = std::move(socket_paths);
    }
    o.fingerprint = inner.fingerprint();
    o.incarnation = 1;
    o.faults = faults;
    links_ = std::make_unique<RingLinks>(o, inner.peers(), inner.pipeline());
  }
  std::size_t self() const override { return inner_.self(); }
  std::size_t size() const override { return inner_.size(); }
  void send(std::size_t peer, OutgoingMessage message) override { inner_.send(peer, std::move(message)); }
  Mailbox& mailbox() override { return inner_.mailbox(); }
  PeerTable& peers() override { return inner_.peers(); }
  void set_progress(std::uint64_t round, std::uint64_t step) override { inner_.set_progress(round, step); }
  RingLinks* ring_links() override { return links_.get(); }

 private:
  FakeTransport& inner_;
  std::unique_ptr<RingLinks> links_;
};

struct LinkedNetwork {
  FakeNetwork fake;
  std::vector<std::unique_ptr<LinkedTransport>> nodes;

  explicit LinkedNetwork(std::size_t n, FaultInjection faults = {},
                         std::vector<std::string> socket_paths = {})
      : fake(names(n), 1, {}, 1 << 16) {
    for (std::size_t i = 0; i < n; ++i) {
      nodes.push_back(std::make_unique<LinkedTransport>(fake.node(i), n, faults, socket_paths));
    }
    // What heartbeat acks would tell each node.
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < n; ++j) {
        if (i != j) nodes[i]->peers().on_ring_port(j, nodes[j]->ring_links()->port());
      }
    }
  }
  LinkedTransport& node(std::size_t i) { return *nodes[i]; }
};

// One collective `tag` of `members`, run by `runners` (all members when empty), one thread
// each, with a RingAllreduce per runner kept in `rings` across calls.
struct Runs {
  LinkedNetwork& network;
  AllreduceOptions options;
  std::vector<std::unique_ptr<RingAllreduce>> rings;
  Runs(LinkedNetwork& net, AllreduceOptions o) : network(net), options(o) {
    for (std::size_t i = 0; i < net.nodes.size(); ++i) {
      rings.push_back(std::make_unique<RingAllreduce>(net.node(i), options));
    }
  }
  std::vector<AllreduceResult> run(std::uint64_t tag, const std::vector<std::size_t>& members,
                                   const std::vector<std::vector<float>>& inputs,
                                   std::vector<std::vector<float>>& outputs,
                                   std::vector<std::size_t> runners = {}) {
    if (runners.empty()) runners = members;
    std::vector<AllreduceResult> results(network.nodes.size());
    outputs.assign(network.nodes.size(), std::vector<float>(inputs[0].size(), -7.0f));
    std::vector<std::future<void>> futures;
    for (std::size_t m : runners) {
      futures.push_back(std::async(std::launch::async, [&, m] {
        results[m] = rings[m]->run(tag, members, inputs[m], outputs[m]);
      }));
    }
    for (auto& f : futures) f.get();
    return results;
  }
};

// Collective 1 of both nodes of a 2-node network, on `length` random values: it succeeds and
// gives the mean on both.
void collective_1_of_two_succeeds(LinkedNetwork& network, std::size_t length) {
  auto inputs = random_inputs(2, length, static_cast<unsigned>(length));
  Runs runs(network, AllreduceOptions{});
  std::vector<std::vector<float>> outputs;
  auto results = runs.run(1, all_members(2), inputs, outputs);
  ASSERT_TRUE(results[0].ok) << results[0].error;
  ASSERT_TRUE(results[1].ok) << results[1].error;
  expect_reduced(outputs, plain_sum(inputs), 2, true);  // AllreduceOptions: mean
}

TEST(RingLinks, AllreduceMatchesAPlainSumForEveryRingSizeAndLength) {
  for (std::size_t n = 2; n <= 8; ++n) {
    LinkedNetwork network(n);
    std::uint64_t tag = 1;
    for (std::size_t length : {0u, 1u, 2u, 7u, 1000u, 100003u}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " length=" + std::to_string(length));
      auto inputs = random_inputs(n, length, static_cast<unsigned>(n * 1000 + length));
      const std::vector<double> sum = plain_sum(inputs);
      for (bool mean : {false, true}) {
        AllreduceOptions options;
        options.mean = mean;
        options.chunk_bytes = length > 1000 ? 4096 : 8;  // many chunks: exercises pipelining
        Runs runs(network, options);
        std::vector<std::vector<float>> outputs;
        auto results = runs.run(tag++, all_members(n), inputs, outputs);
        for (std::size_t i = 0; i < n; ++i) ASSERT_TRUE(results[i].ok) << results[i].error;
        expect_reduced(outputs, sum, n, mean);
      }
    }
  }
}

// In place (out is in): a segment's step-0 chunks are sent from the buffer that the
// all-gather later overwrites. Causality keeps that safe (the overwriting chunk cannot arrive
// before the ring took the sent one); this checks it.
TEST(RingLinks, WorksInPlace) {
  const std::size_t n = 5, length = 123457;
  LinkedNetwork network(n);
  auto inputs = random_inputs(n, length, 3);
  std::vector<double> sum(length, 0.0);
  for (const auto& v : inputs) {
    for (std::size_t k = 0; k < length; ++k) sum[k] += v[k];
  }
  AllreduceOptions options;
  options.chunk_bytes = 4096;
  std::vector<std::unique_ptr<RingAllreduce>> rings;
  for (std::size_t i = 0; i < n; ++i) rings.push_back(std::make_unique<RingAllreduce>(network.node(i), options));
  std::vector<std::future<AllreduceResult>> futures;
  for (std::size_t i = 0; i < n; ++i) {
    futures.push_back(std::async(std::launch::async, [&, i] {
      return rings[i]->run(1, all_members(n), inputs[i], inputs[i]);
    }));
  }
  for (std::size_t i = 0; i < n; ++i) {
    AllreduceResult r = futures[i].get();
    ASSERT_TRUE(r.ok) << r.error;
  }
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < length; k += 7) ASSERT_NEAR(inputs[i][k], sum[k] / n, 1e-5) << i << " " << k;
  }
}

TEST(RingLinks, EachMemberSendsTwoNMinusOneOverNOfTheBuffer) {
  for (std::size_t n : {2u, 3u, 4u, 8u}) {
    const std::size_t length = 1 << 20;
    LinkedNetwork network(n);
    auto inputs = random_inputs(n, length, 4);
    Runs runs(network, AllreduceOptions{});
    std::vector<std::vector<float>> outputs;
    auto results = runs.run(1, all_members(n), inputs, outputs);
    const double optimal = 2.0 * static_cast<double>(n - 1) / static_cast<double>(n) *
                           static_cast<double>(length * sizeof(float));
    for (std::size_t i = 0; i < n; ++i) {
      ASSERT_TRUE(results[i].ok) << results[i].error;
      EXPECT_NEAR(static_cast<double>(results[i].payload_bytes_sent) / optimal, 1.0, 0.01);
      double sent = static_cast<double>(network.node(i).peers().snapshot()[(i + 1) % n].bytes_sent);
      EXPECT_NEAR(sent / optimal, 1.0, 0.01) << "n=" << n << " node " << i;
    }
  }
}

// A member that never joins: the others fail without waiting out the timeout once it is
// dead, keep their inputs, and the next collectives (without it, then with it again) run on
// the same links, past the chunks of the failed one still queued in them.
TEST(RingLinks, AFailedCollectiveLeavesTheLinksUsableForTheNextOnes) {
  const std::size_t n = 4, length = 300000;
  LinkedNetwork network(n);
  auto inputs = random_inputs(n, length, 5);
  const auto original = inputs;
  AllreduceOptions options;
  options.timeout = 20s;
  options.chunk_bytes = 64 * 1024;
  Runs runs(network, options);
  std::vector<std::vector<float>> outputs;
  ASSERT_TRUE(runs.run(1, all_members(n), inputs, outputs)[0].ok);

  network.fake.kill(2);
  const auto start = Clock::now();
  auto failed = runs.run(2, all_members(n), inputs, outputs, {0, 1, 3});
  EXPECT_LT(Clock::now() - start, 5s) << "survivors waited for the timeout";
  for (std::size_t m : {0u, 1u, 3u}) {
    EXPECT_FALSE(failed[m].ok) << m;
    EXPECT_FALSE(failed[m].error.empty());
    EXPECT_EQ(inputs[m], original[m]);
  }

  auto without = runs.run(3, {0, 1, 3}, inputs, outputs);
  for (std::size_t m : {0u, 1u, 3u}) {
    ASSERT_TRUE(without[m].ok) << m << ": " << without[m].error;
    EXPECT_NEAR(outputs[m][10], (inputs[0][10] + inputs[1][10] + inputs[3][10]) / 3.0, 1e-5);
  }
  // n1 sent its first chunks of collective 2 to n2, which never read them: n2 skips them.
  network.fake.revive(2);
  auto again = runs.run(4, all_members(n), inputs, outputs);
  for (std::size_t m = 0; m < n; ++m) {
    ASSERT_TRUE(again[m].ok) << m << ": " << again[m].error;
    EXPECT_NEAR(outputs[m][123],
                (inputs[0][123] + inputs[1][123] + inputs[2][123] + inputs[3][123]) / 4.0, 1e-5);
  }
}

// A stop ends a member's wait on its links at once (within the 10 ms between checks), and its
// abort ends the others' waits too. n0 never joins, so n1 waits for n0 and n2 for n1.
TEST(RingLinks, AStopEndsTheWaitAtOnceAndTellsTheOthers) {
  LinkedNetwork network(3);
  std::atomic<bool> stopping{false};
  AllreduceOptions plain;
  plain.timeout = 20s;
  AllreduceOptions stoppable = plain;
  stoppable.stop = [&] { return stopping.load(); };
  RingAllreduce ring0(network.node(0), plain);  // opens n0's mailbox for the abort
  RingAllreduce ring1(network.node(1), stoppable);
  RingAllreduce ring2(network.node(2), plain);
  auto inputs = random_inputs(3, 5000, 11);
  std::vector<float> out1(5000), out2(5000);
  auto f1 = std::async(std::launch::async, [&] { return ring1.run(1, all_members(3), inputs[1], out1); });
  auto f2 = std::async(std::launch::async, [&] { return ring2.run(1, all_members(3), inputs[2], out2); });
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(f1.wait_for(0s), std::future_status::timeout) << "n1 did not wait for n0";
  const auto start = Clock::now();
  stopping = true;
  AllreduceResult r1 = f1.get(), r2 = f2.get();
  EXPECT_LT(Clock::now() - start, 2s);
  EXPECT_FALSE(r1.ok);
  EXPECT_NE(r1.error.find("stopped"), std::string::npos) << r1.error;
  EXPECT_FALSE(r2.ok);
  EXPECT_NE(r2.error.find("aborted"), std::string::npos) << r2.error;
  EXPECT_TRUE(network.fake.node(0).mailbox().contains(MessageType::allreduce_abort, 1));
}

// A fixed port is where the link listens (for firewalls); one already taken is refused with
// the host and port named.
TEST(RingLinks, ListensOnAFixedPortOrSaysWhyItCannot) {
  FakeNetwork fake(names(2), 1);
  RingLinksOptions o;
  o.self = 0;
  o.hosts = {"127.0.0.1", "127.0.0.1"};
  o.listen_port = 0;
  RingLinks picked(o, fake.node(0).peers(), fake.node(0).pipeline());
  const std::uint16_t taken = picked.port();
  ASSERT_NE(taken, 0);
  o.listen_port = taken;
  try {
    RingLinks again(o, fake.node(0).peers(), fake.node(0).pipeline());
    ADD_FAILURE() << "bound a port that is taken";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1 port " + std::to_string(taken)),
              std::string::npos)
        << e.what();
  }
  // A free port, found by letting the kernel pick one and giving it back.
  std::uint16_t free_port = 0;
  {
    RingLinksOptions any = o;
    any.listen_port = 0;
    RingLinks probe(any, fake.node(0).peers(), fake.node(0).pipeline());
    free_port = probe.port();
  }
  o.listen_port = free_port;
  RingLinks fixed(o, fake.node(0).peers(), fake.node(0).pipeline());
  EXPECT_EQ(fixed.port(), free_port);
}

// A raw TCP client that speaks for a node: what a buggy or hostile peer could put on a link.
class RawClient {
 public:
  explicit RawClient(std::uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  ~RawClient() { close(fd_); }
  void write(std::span<const std::byte> bytes) {
    ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL), static_cast<ssize_t>(bytes.size()));
  }
  void write(const Header& h) { write(encode_header(h)); }

 private:
  int fd_ = -1;
};

Header hello_from(std::size_t sender, std::size_t to, std::uint64_t fingerprint) {
  Header h;
  h.type = MessageType::ring_hello;
  h.sender = static_cast<std::uint32_t>(sender);
  h.incarnation = 1;
  h.fingerprint = fingerprint;
  h.aux0 = to;
  return h;
}

// The header of a chunk of collective 1 that n0 sends to n1 in the ring {n0, n1}, for
// `values`, at wire step `step` (chunk 0).
Header chunk_from_n0(std::uint64_t fingerprint, std::uint64_t step, const std::vector<float>& values) {
  Header chunk;
  chunk.type = MessageType::allreduce_chunk;
  chunk.sender = 0;
  chunk.incarnation = 1;
  chunk.fingerprint = fingerprint;
  chunk.tag = 1;
  chunk.aux0 = step << 32;
  chunk.aux1 = RingAllreduce::membership_fingerprint({0, 1});
  chunk.payload_bytes = values.size() * sizeof(float);
  chunk.payload_crc = payload_checksum(std::as_bytes(std::span<const float>(values)));
  return chunk;
}

// n1's side of collective 1 of the ring {n0, n1}, whose n0 is a raw client: n1's input is
// 100 values of 0.5, which a failed collective must leave as they were.
AllreduceResult n1_runs_collective_1(LinkedNetwork& network) {
  AllreduceOptions options;
  options.timeout = 10s;
  RingAllreduce ring(network.node(1), options);
  std::vector<float> in(100, 0.5f), out(100, -7.0f);
  AllreduceResult result = ring.run(1, {0, 1}, in, out);
  EXPECT_EQ(in, std::vector<float>(100, 0.5f));
  return result;
}

// Garbage, a hello with another fingerprint and a hello meant for another node are refused
// and counted, and the collective that serves them succeeds.
TEST(RingLinks, ConnectionsWithoutAValidHelloAreRefusedAndCounted) {
  LinkedNetwork network(2);
  const std::uint16_t port = network.node(1).ring_links()->port();
  const std::uint64_t fingerprint = network.fake.node(0).fingerprint();
  RawClient garbage(port);
  std::vector<std::byte> junk(kHeaderSize, std::byte{0x5A});
  garbage.write(junk);
  RawClient other_model(port);
  other_model.write(hello_from(0, 1, fingerprint + 1));
  RawClient misdirected(port);
  misdirected.write(hello_from(0, 7, fingerprint));

  collective_1_of_two_succeeds(network, 1000);
  PeerTable& peers = network.node(1).peers();
  EXPECT_EQ(peers.unknown_rejections()[static_cast<std::size_t>(RejectReason::bad_magic)], 1u);
  const auto n0 = peers.snapshot()[0].rejected;
  EXPECT_EQ(n0[static_cast<std::size_t>(RejectReason::fingerprint_mismatch)], 1u);
  EXPECT_EQ(n0[static_cast<std::size_t>(RejectReason::not_a_neighbour)], 1u);
}

// A chunk whose bytes do not match its checksum (or that carries NaN) fails the collective
// with a message that says so, is counted, and the caller's input is untouched. The left
// neighbour here is a raw client speaking for n0 to n1.
TEST(RingLinks, ACorruptOrNonFiniteChunkFailsTheCollectiveAndIsCounted) {
  for (bool corrupt : {true, false}) {
    SCOPED_TRACE(corrupt ? "corrupt" : "non-finite");
    LinkedNetwork network(2);
    const std::uint64_t fingerprint = network.fake.node(0).fingerprint();
    RawClient left(network.node(1).ring_links()->port());
    left.write(hello_from(0, 1, fingerprint));
    // n1's segment 0 arrives from n0 in reduce-scatter step 0, chunk 0.
    std::vector<float> values(50, 1.0f);
    Header chunk = chunk_from_n0(fingerprint, 0, values);
    if (corrupt) {
      values[3] = 2.0f;
    } else {
      values[3] = std::numeric_limits<float>::quiet_NaN();
      chunk.payload_crc = payload_checksum(std::as_bytes(std::span<const float>(values)));
    }
    left.write(chunk);
    left.write(std::as_bytes(std::span<const float>(values)));

    const auto start = Clock::now();
    AllreduceResult result = n1_runs_collective_1(network);
    EXPECT_LT(Clock::now() - start, 5s);
    EXPECT_FALSE(result.ok);
    EXPECT_NE(result.error.find(corrupt ? "checksum" : "NaN"), std::string::npos) << result.error;
    const auto rejected = network.node(1).peers().snapshot()[0].rejected;
    EXPECT_EQ(rejected[static_cast<std::size_t>(corrupt ? RejectReason::checksum_mismatch
                                                        : RejectReason::non_finite)],
              1u);
  }
}

// A left neighbour that sends the wrong chunk (another step, or another size than the ring
// has for it) fails the collective at once and loses its link; it is not read as data.
TEST(RingLinks, AChunkOutOfOrderFailsTheCollectiveAndDropsTheLink) {
  LinkedNetwork network(2);
  const std::uint64_t fingerprint = network.fake.node(0).fingerprint();
  RawClient left(network.node(1).ring_links()->port());
  left.write(hello_from(0, 1, fingerprint));
  std::vector<float> values(50, 1.0f);
  const Header chunk = chunk_from_n0(fingerprint, 1, values);  // step 1 where step 0 is due
  left.write(chunk);
  left.write(std::as_bytes(std::span<const float>(values)));
  AllreduceResult result = n1_runs_collective_1(network);
  EXPECT_FALSE(result.ok);
  EXPECT_NE(result.error.find("step 1 chunk 0"), std::string::npos) << result.error;
  EXPECT_EQ(network.node(1).ring_links()->inbound(0), nullptr);
}

}  // namespace
}  // namespace starling::gossip

namespace starling::gossip {
namespace {

using namespace std::chrono_literals;
using namespace ring_testing;

WireSnapshot floats_snapshot(std::shared_ptr<const std::vector<float>> model) {
  WireSnapshot snapshot;
  snapshot.floats = std::move(model);
  return snapshot;
}

topology::Topology compiled(const std::string& kind, std::size_t n) {
  std::string text = "[cluster]\nname = \"t\"\n[topology]\nkind = \"" + kind + "\"\n";
  for (std::size_t i = 0; i < n; ++i) {
    text += "[[node]]\nid = \"n" + std::to_string(i) + "\"\nendpoint = \"tcp://127.0.0.1:" +
            std::to_string(7000 + i) + "\"\n";
  }
  return topology::Topology::compile(topology::parse_cluster_text(text, "t.toml"));
}

// Gossip rounds on 4 nodes whose fake network carries nothing: every payload must come over
// the links. Node i's model is all i; the ring mixes 1/3 each, the one-peer exponential graph
// 1/2 with this round's in-neighbour (binary16 carries these values exactly).
// Three rounds of 4 nodes, ring in f32 and one-peer exponential in f16, with the fake
// network cut so that every payload must take the links (made by `make_network`).
template <typename MakeNetwork>
void gossip_rounds_travel_over_the_links(MakeNetwork make_network) {
  for (bool exponential : {false, true}) {
    SCOPED_TRACE(exponential ? "one-peer exponential, f16" : "ring, f32");
    const std::size_t n = 4;
    std::unique_ptr<LinkedNetwork> owned = make_network(n);
    LinkedNetwork& network = *owned;
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < n; ++j) {
        if (i != j) network.fake.cut(i, j);
      }
    }
    auto topo = compiled(exponential ? "one-peer-exponential" : "ring", n);
    const auto precision = exponential ? WirePrecision::f16 : WirePrecision::f32;
    std::vector<std::unique_ptr<GossipAverager>> averagers;
    for (std::size_t i = 0; i < n; ++i) {
      averagers.push_back(std::make_unique<GossipAverager>(network.node(i), topo, 5000ms,
                                                           GossipAverager::kDefaultWindow, precision));
    }
    const std::size_t length = 100003;  // more than a socket takes at once
    for (std::uint64_t round = 0; round < 3; ++round) {
      std::vector<std::vector<float>> mixed(n, std::vector<float>(length));
      std::vector<GossipRoundResult> results(n);
      std::vector<std::thread> threads;
      std::atomic<std::size_t> done{0};
      for (std::size_t i = 0; i < n; ++i) {
        threads.emplace_back([&, i] {
          auto model = std::make_shared<const std::vector<float>>(length, static_cast<float>(i));
          results[i] = averagers[i]->run_round(round, model, mixed[i]);
          ++done;
          // A node whose round is complete may still have its payload half written (a socket
          // takes a few hundred KB at once); as between training steps, it goes on writing.
          while (done.load() < n) averagers[i]->progress_links(1ms);
        });
      }
      for (auto& t : threads) t.join();
      for (std::size_t i = 0; i < n; ++i) {
        ASSERT_EQ(results[i].received, results[i].expected) << "node " << i << " round " << round;
        double expected = static_cast<double>(i);
        if (exponential) {
          const std::size_t offset = std::size_t{1} << (round % 2);
          expected = (static_cast<double>(i) + static_cast<double>((i + n - offset) % n)) / 2;
        } else {
          expected = (static_cast<double>(i) + static_cast<double>((i + 1) % n) +
                      static_cast<double>((i + n - 1) % n)) / 3;
        }
        EXPECT_NEAR(mixed[i][0], expected, 1e-5) << "node " << i << " round " << round;
        EXPECT_NEAR(mixed[i][length - 1], expected, 1e-5) << "node " << i << " round " << round;
      }
    }
  }
}

TEST(RingLinks, GossipRoundsTravelOverTheLinks) {
  gossip_rounds_travel_over_the_links(
      [](std::size_t n) { return std::make_unique<LinkedNetwork>(n); });
}

// A gossip payload that a node sent before a collective, and that its right neighbour had not
// read yet, is in front of the collective's chunks on the link: the collective files it in the
// mailbox for its round and goes on; the round then completes with it.
TEST(RingLinks, AGossipPayloadAheadOfAChunkIsFiledByTheCollective) {
  LinkedNetwork network(2);
  network.fake.cut(0, 1);
  network.fake.cut(1, 0);
  auto topo = compiled("ring", 2);
  GossipAverager sender(network.node(0), topo, 5000ms), receiver(network.node(1), topo, 5000ms);
  auto model = std::make_shared<const std::vector<float>>(1000, 4.0f);
  WireSnapshot snapshot = floats_snapshot(model);
  PendingRound sent = sender.begin_exchange(0, snapshot);  // n0's payload for round 0 to n1

  collective_1_of_two_succeeds(network, 5000);

  auto mine = std::make_shared<const std::vector<float>>(1000, 0.0f);
  std::vector<float> mixed(1000);
  std::thread other([&] { sender.finish_exchange(sent); });
  auto result = receiver.run_round(0, mine, mixed);
  other.join();
  EXPECT_EQ(result.received, 1u);
  EXPECT_NEAR(mixed[0], 2.0f, 1e-6);  // a ring of 2: 1/2 each
}

// What a buggy or hostile sender could put on a link as gossip: a payload that does not match
// its checksum, one with NaN. Each is read whole, refused and counted, and never filed; the
// link goes on, and the good payload after them arrives. The link of a node that may not send
// this node gossip is not read for gossip at all.
TEST(RingLinks, BadGossipFramesAreRefusedAndCountedAndTheLinkGoesOn) {
  // n0 may send n1 gossip, n2 not.
  FakeNetwork fake(names(3), 1, {{false, true, true}, {true, false, false}, {true, true, false}});
  LinkedTransport n1(fake.node(1), 3);
  for (std::size_t j : {0u, 2u}) fake.cut(j, 1);
  auto topo = compiled("ring", 3);
  GossipAverager averager(n1, topo, 200ms);  // opens the mailbox window for round 0..8
  const std::uint64_t fingerprint = fake.node(0).fingerprint();
  auto frame = [&](std::uint32_t sender, std::uint64_t round, std::vector<float> values,
                   std::uint32_t crc_flip) {
    Header h;
    h.type = MessageType::gossip_params;
    h.sender = sender;
    h.incarnation = 1;
    h.fingerprint = fingerprint;
    h.tag = round;
    const auto bytes = std::as_bytes(std::span<const float>(values));
    h.payload_bytes = bytes.size();
    h.payload_crc = payload_checksum(bytes) ^ crc_flip;
    std::vector<std::byte> out(kHeaderSize + bytes.size());
    const auto head = encode_header(h);
    std::copy(head.begin(), head.end(), out.begin());
    std::copy(bytes.begin(), bytes.end(), out.begin() + kHeaderSize);
    return out;
  };
  const std::uint16_t port = n1.ring_links()->port();
  RawClient from_n0(port);
  from_n0.write(hello_from(0, 1, fingerprint));
  from_n0.write(frame(0, 0, std::vector<float>(500, 1.0f), 1));  // corrupt
  from_n0.write(frame(0, 0, {1.0f, std::numeric_limits<float>::quiet_NaN()}, 0));
  from_n0.write(frame(0, 0, std::vector<float>(500, 3.0f), 0));  // good
  RawClient from_n2(port);
  from_n2.write(hello_from(2, 1, fingerprint));
  from_n2.write(frame(2, 0, std::vector<float>(500, 5.0f), 0));  // n2 may not

  Mailbox& mailbox = n1.mailbox();
  std::optional<ReceivedMessage> good;
  const auto deadline = Clock::now() + 5s;
  while (!good && Clock::now() < deadline) {
    averager.progress_links();
    good = mailbox.try_take(MailboxKey{MessageType::gossip_params, 0, 0, 0});
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(good);
  EXPECT_EQ(good->floats()[499], 3.0f);
  auto rejected = [&](std::size_t peer, RejectReason reason) {
    return n1.peers().snapshot()[peer].rejected[static_cast<std::size_t>(reason)];
  };
  EXPECT_EQ(rejected(0, RejectReason::checksum_mismatch), 1u);
  EXPECT_EQ(rejected(0, RejectReason::non_finite), 1u);
  EXPECT_FALSE(mailbox.try_take(MailboxKey{MessageType::gossip_params, 0, 2, 0}));
  EXPECT_FALSE(mailbox.try_take(MailboxKey{MessageType::gossip_params, 0, 0, 0}));
}

// A payload is its sender's to free again once its link has written it all, whether in one
// go (a small one) or over several writes between steps (one larger than the socket takes).
// For one commit a payload written in one go stayed with the link until the next payload
// that had to wait: every snapshot of a run, 0.5 MB a round, and a node a quarter slower.
TEST(RingLinks, APayloadIsReleasedOnceItsLinkHasWrittenIt) {
  for (std::size_t length : {std::size_t{1000}, std::size_t{1} << 20}) {
    SCOPED_TRACE(std::to_string(length) + " values");
    LinkedNetwork network(2);
    network.fake.cut(0, 1);
    network.fake.cut(1, 0);
    auto topo = compiled("ring", 2);
    GossipAverager first(network.node(0), topo, 5000ms), second(network.node(1), topo, 5000ms);
    for (std::uint64_t round = 0; round < 3; ++round) {
      std::weak_ptr<const std::vector<float>> sent[2];
      std::thread other([&] {
        auto model = std::make_shared<const std::vector<float>>(length, 2.0f);
        sent[1] = model;
        std::vector<float> mixed(length);
        EXPECT_EQ(second.run_round(round, model, mixed).received, 1u);
      });
      {
        auto model = std::make_shared<const std::vector<float>>(length, 1.0f);
        sent[0] = model;
        std::vector<float> mixed(length);
        EXPECT_EQ(first.run_round(round, model, mixed).received, 1u);
        EXPECT_NEAR(mixed[length - 1], 1.5f, 1e-6);
      }
      other.join();
      // Each round is complete on both sides: each payload was read whole, so its last byte
      // was written, and the write that wrote it released the payload.
      EXPECT_TRUE(sent[0].expired()) << "round " << round;
      EXPECT_TRUE(sent[1].expired()) << "round " << round;
    }
  }
}

// The CPU time this process has used so far (every thread).
std::chrono::microseconds process_cpu_time() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return std::chrono::seconds(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         std::chrono::microseconds(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

// Both nodes of a 2-node network run gossip round `round` of a model of `length` values
// (node i's all i + 1) with `timeout`; the results, and how long the slower took.
std::pair<std::array<GossipRoundResult, 2>, std::chrono::milliseconds> round_of_two(
    std::array<std::unique_ptr<GossipAverager>, 2>& averagers, std::uint64_t round,
    std::size_t length) {
  std::array<GossipRoundResult, 2> results;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  std::atomic<int> finished{0};
  for (std::size_t i = 0; i < 2; ++i) {
    threads.emplace_back([&, i] {
      auto model = std::make_shared<const std::vector<float>>(length, static_cast<float>(i + 1));
      std::vector<float> mixed(length);
      results[i] = averagers[i]->run_round(round, model, mixed);
      // A node whose round completed may still hold its own payload (the delay hook holds it
      // for a while after the neighbour's arrived): it keeps moving its links until both
      // rounds are done, as starlingd's training thread does between steps.
      ++finished;
      while (finished.load() < 2) averagers[i]->progress_links(std::chrono::milliseconds(1));
    });
  }
  for (auto& t : threads) t.join();
  return {results, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start)};
}

// starlingd's --test-drop-rate acts on gossip payloads over the links as on ZeroMQ messages:
// at 1, none arrives, each is counted, and every round gives up on its neighbour.
TEST(RingLinks, TheDropTestHookLosesGossipFramesOnTheLinks) {
  FaultInjection faults;
  faults.drop_probability = 1.0;
  LinkedNetwork network(2, faults);
  network.fake.cut(0, 1);  // nothing through the fake network either
  network.fake.cut(1, 0);
  auto topo = compiled("ring", 2);
  std::array<std::unique_ptr<GossipAverager>, 2> averagers;
  for (std::size_t i = 0; i < 2; ++i) {
    averagers[i] = std::make_unique<GossipAverager>(network.node(i), topo, 200ms);
  }
  for (std::uint64_t round = 0; round < 3; ++round) {
    auto [results, took] = round_of_two(averagers, round, 1000);
    EXPECT_EQ(results[0].received, 0u) << "round " << round;
    EXPECT_EQ(results[1].received, 0u) << "round " << round;
  }
  EXPECT_EQ(network.node(0).ring_links()->dropped_by_fault_injection(), 3u);
  EXPECT_EQ(network.node(1).ring_links()->dropped_by_fault_injection(), 3u);
}

// --test-delay-ms holds each gossip payload on its link for the delay: no round completes
// sooner, each completes with its neighbour's payload, and the wait for a payload held back
// polls rather than spins (polling for POLLOUT on a link whose next frame is held would
// return at once, every time). Held payloads do not count toward kMaxQueuedGossip.
TEST(RingLinks, TheDelayTestHookHoldsGossipFramesOnTheLinks) {
  FaultInjection faults;
  faults.delay = 300ms;
  LinkedNetwork network(2, faults);
  network.fake.cut(0, 1);
  network.fake.cut(1, 0);
  auto topo = compiled("ring", 2);
  std::array<std::unique_ptr<GossipAverager>, 2> averagers;
  for (std::size_t i = 0; i < 2; ++i) {
    averagers[i] = std::make_unique<GossipAverager>(network.node(i), topo, 5000ms);
  }
  const auto cpu_before = process_cpu_time();
  std::chrono::milliseconds waited{0};
  for (std::uint64_t round = 0; round < 2; ++round) {
    auto [results, took] = round_of_two(averagers, round, 1000);
    EXPECT_EQ(results[0].received, 1u) << "round " << round;
    EXPECT_EQ(results[1].received, 1u) << "round " << round;
    EXPECT_GE(took, 300ms) << "round " << round;
    waited += took;
  }
  // Two threads spinning through 0.6 s of waiting would use over a second of CPU.
  EXPECT_LT(process_cpu_time() - cpu_before, waited / 2);

  // Six payloads held back at once on one link: none refused at the bound of four.
  GossipAverager& sender = *averagers[0];
  std::vector<PendingRound> rounds;
  for (std::uint64_t round = 2; round < 8; ++round) {
    auto model = std::make_shared<const std::vector<float>>(1000, 1.0f);
    rounds.push_back(sender.begin_exchange(round, floats_snapshot(model)));
  }
  EXPECT_EQ(network.node(0).peers().send_failures(1), 0u);
}

// A neighbour that stops reading (stalled, not yet declared dead) fills its socket; the
// sender then keeps at most kMaxQueuedGossip payloads on the link and counts the rest as send
// failures, instead of holding every snapshot until the neighbour is dead.
TEST(RingLinks, ALinkToANeighbourThatDoesNotReadHoldsAFewPayloadsOnly) {
  LinkedNetwork network(2);
  network.fake.cut(0, 1);
  network.fake.cut(1, 0);
  auto topo = compiled("ring", 2);
  GossipAverager sender(network.node(0), topo, 100ms);
  std::vector<PendingRound> rounds;
  for (std::uint64_t round = 0; round < 12; ++round) {
    auto model = std::make_shared<const std::vector<float>>(1 << 20, 1.0f);  // 4 MiB each
    rounds.push_back(sender.begin_exchange(round, floats_snapshot(model)));
    sender.progress_links();
  }
  // 12 payloads of 4 MiB cannot all be in the sockets: some were refused at the bound.
  EXPECT_GE(network.node(0).peers().send_failures(1), 12u - RingLinks::kMaxQueuedGossip - 2);
}

// ------------------------------------------------------------ over Unix-domain sockets

// Socket paths for n nodes' ring links in a private directory (removed with what is left in
// it when `dir` goes).
std::vector<std::string> link_socket_paths(const training::testing::TempDir& dir, std::size_t n) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(dir.file("n" + std::to_string(i) + ".link"));
  return out;
}

bool is_socket_file(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

// A socket file such as a SIGKILLed process leaves behind: bound, then closed, never removed.
void leave_stale_socket_file(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  close(fd);
  ASSERT_TRUE(is_socket_file(path));
}

TEST(RingLinks, OverUnixSocketsAllreduceMatchesAPlainSum) {
  training::testing::TempDir dir;
  for (std::size_t n : {2u, 3u, 5u}) {
    LinkedNetwork network(n, {}, link_socket_paths(dir, n));
    // Nothing through the fake network: every chunk must take the links.
    for (std::size_t i = 0; i < n; ++i) {
      for (std::size_t j = 0; j < n; ++j) {
        if (i != j) network.fake.cut(i, j);
      }
    }
    ASSERT_TRUE(network.node(0).ring_links()->unix_sockets());
    EXPECT_EQ(network.node(0).ring_links()->port(), 1);  // what acks announce: "listening"
    std::uint64_t tag = 1;
    for (std::size_t length : {0u, 1u, 7u, 100003u}) {
      SCOPED_TRACE("n=" + std::to_string(n) + " length=" + std::to_string(length));
      auto inputs = random_inputs(n, length, static_cast<unsigned>(n * 1000 + length));
      AllreduceOptions options;
      options.chunk_bytes = length > 1000 ? 4096 : 8;
      Runs runs(network, options);
      std::vector<std::vector<float>> outputs;
      auto results = runs.run(tag++, all_members(n), inputs, outputs);
      for (std::size_t m = 0; m < n; ++m) ASSERT_TRUE(results[m].ok) << m << ": " << results[m].error;
      expect_reduced(outputs, plain_sum(inputs), n, true);
    }
  }
}

// Unix-domain links carry allreduce chunks only (RingLinks::carries_gossip): gossip rounds go
// through the transport (here the fake network), and nothing of theirs takes a link.
TEST(RingLinks, GossipRoundsBetweenUnixSocketNodesGoThroughTheTransport) {
  training::testing::TempDir dir;
  const std::size_t n = 4;
  LinkedNetwork network(n, {}, link_socket_paths(dir, n));
  ASSERT_FALSE(network.node(0).ring_links()->carries_gossip());
  auto topo = compiled("ring", n);
  std::vector<std::unique_ptr<GossipAverager>> averagers;
  for (std::size_t i = 0; i < n; ++i) {
    averagers.push_back(std::make_unique<GossipAverager>(network.node(i), topo, 5000ms));
  }
  const std::size_t length = 1000;
  std::vector<std::vector<float>> mixed(n, std::vector<float>(length));
  std::vector<GossipRoundResult> results(n);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      auto model = std::make_shared<const std::vector<float>>(length, static_cast<float>(i));
      results[i] = averagers[i]->run_round(0, model, mixed[i]);
    });
  }
  for (auto& t : threads) t.join();
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(results[i].received, results[i].expected) << "node " << i;
    const double expected = (static_cast<double>(i) + static_cast<double>((i + 1) % n) +
                             static_cast<double>((i + n - 1) % n)) / 3;
    EXPECT_NEAR(mixed[i][0], expected, 1e-5) << "node " << i;
    RingLinks& links = *network.node(i).ring_links();
    std::lock_guard lock(links.mutex());
    for (std::size_t j = 0; j < n; ++j) EXPECT_FALSE(links.latest_gossip_round(j)) << i << " from " << j;
  }
}

// A node SIGKILLed leaves its socket file; the restarted node must listen there again. On a
// clean exit the file goes, unless another process has bound the path since.
TEST(RingLinks, AUnixSocketFileLeftBehindIsReplacedAndItsOwnIsRemovedOnExit) {
  training::testing::TempDir dir;
  const auto paths = link_socket_paths(dir, 2);
  leave_stale_socket_file(paths[0]);
  {
    LinkedNetwork network(2, {}, paths);  // node 0 binds over the stale file
    collective_1_of_two_succeeds(network, 1000);
    EXPECT_TRUE(is_socket_file(paths[0]));
    EXPECT_TRUE(is_socket_file(paths[1]));
  }
  EXPECT_FALSE(is_socket_file(paths[0]));
  EXPECT_FALSE(is_socket_file(paths[1]));

  // Node 0's path taken over by a later process (here: a stale-looking file bound after it):
  // node 0's exit leaves that one alone.
  FakeNetwork fake(names(2), 1);
  RingLinksOptions o;
  o.self = 0;
  o.socket_paths = paths;
  {
    RingLinks links(o, fake.node(0).peers(), fake.node(0).pipeline());
    std::filesystem::remove(paths[0]);
    leave_stale_socket_file(paths[0]);
  }
  EXPECT_TRUE(is_socket_file(paths[0]));
}

TEST(RingLinks, UnixSocketsWorkInTheAbstractNamespaceAndLongPathsAreRefused) {
  const std::string stem = "@starling-links-test-" + std::to_string(getpid()) + "-";
  LinkedNetwork network(2, {}, {stem + "0", stem + "1"});
  collective_1_of_two_succeeds(network, 777);

  FakeNetwork fake(names(2), 1);
  RingLinksOptions o;
  o.self = 0;
  o.socket_paths = {"/tmp/" + std::string(120, 'x'), "/tmp/y"};
  try {
    RingLinks links(o, fake.node(0).peers(), fake.node(0).pipeline());
    ADD_FAILURE() << "listened at a path longer than a socket address holds";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("longer than 107 bytes"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace starling::gossip
