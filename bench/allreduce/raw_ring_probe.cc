// Design probe, not part of starlingd: the same ring allreduce (reduce-scatter, all-gather,
// 1 MiB chunks, mean, CRC-32C and NaN/Inf scan on every received chunk) over plain nonblocking
// TCP sockets to the ring neighbours, driven by the calling thread with poll(), receiving
// all-gather chunks straight into the output buffer. It measures what a dedicated collective
// transport without ZeroMQ would gain on this machine (bench/RESULTS-allreduce.md), so that
// the decision to build one rests on a number. It has no fault handling: a dead neighbour
// makes it exit with an error, and it trusts its peers' chunk sizes.
//
// --transfer-only measures the floor of any allreduce over TCP on this machine: the same
// chunks, in the same order and with the same dependencies (a chunk is forwarded only once it
// has arrived), but no reduction, no checksum and no result. Every allreduce of B bytes on N
// members must move 2(N-1)/N B through each member's sockets (Patarasuk & Yuan 2009), so no
// implementation that sends uncompressed floats over loopback TCP can beat this time.
//
//   raw_ring_probe --rank R --ports P0,P1,... --bytes B [--iterations I] [--no-checksum]
//                  [--transfer-only] [--socket-buffer-bytes S]
// Rank r listens on 127.0.0.1:Pr and connects to rank r+1; prints one JSON line.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <deque>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gossip/crc32c_kernels.h"

namespace {

using starling::gossip::detail::crc32c_update;
using starling::gossip::detail::fastest_crc32c_kernel;

struct ChunkHeader {
  std::uint32_t crc;
  std::uint32_t bytes;
};

[[noreturn]] void fail(const std::string& what) {
  throw std::runtime_error(what + ": " + std::strerror(errno));
}

sockaddr_in loopback(int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

// Connects to the right neighbour and accepts the left one (each within 30 s); both sockets
// nonblocking.
// socket_buffer_bytes > 0 sets SO_SNDBUF and SO_RCVBUF (before connecting, so that TCP's
// window scaling sees them); 0 leaves the kernel's autotuning.
std::pair<int, int> connect_ring(int rank, const std::vector<int>& ports, int socket_buffer_bytes) {
  const int world = static_cast<int>(ports.size());
  const int listener = socket(AF_INET, SOCK_STREAM, 0);
  const int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in own = loopback(ports[rank]);
  auto size_buffers = [socket_buffer_bytes](int s) {
    if (socket_buffer_bytes <= 0) return;
    setsockopt(s, SOL_SOCKET, SO_SNDBUF, &socket_buffer_bytes, sizeof socket_buffer_bytes);
    setsockopt(s, SOL_SOCKET, SO_RCVBUF, &socket_buffer_bytes, sizeof socket_buffer_bytes);
  };
  size_buffers(listener);  // accepted sockets inherit them
  if (bind(listener, reinterpret_cast<sockaddr*>(&own), sizeof own) != 0) fail("bind");
  if (listen(listener, 4) != 0) fail("listen");
  int right = -1;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (right < 0) {
    right = socket(AF_INET, SOCK_STREAM, 0);
    size_buffers(right);
    sockaddr_in peer = loopback(ports[(rank + 1) % world]);
    if (connect(right, reinterpret_cast<sockaddr*>(&peer), sizeof peer) != 0) {
      close(right);
      right = -1;
      if (std::chrono::steady_clock::now() > deadline) fail("connect to the right neighbour");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  pollfd pending{listener, POLLIN, 0};
  if (poll(&pending, 1, 30000) != 1) throw std::runtime_error("the left neighbour did not connect");
  const int left = accept(listener, nullptr, nullptr);
  if (left < 0) fail("accept");
  close(listener);
  for (int s : {left, right}) {
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(s, F_SETFL, O_NONBLOCK);
  }
  return {left, right};
}

class RawRing {
 public:
  RawRing(int rank, int world, int left, int right, std::size_t chunk_floats, bool checksum,
          bool transfer_only)
      : rank_(rank), world_(world), left_(left), right_(right), chunk_(chunk_floats),
        checksum_(checksum && !transfer_only), transfer_only_(transfer_only) {}

  // out = mean over ranks of in. `partial` holds reduce-scatter partial sums that are still
  // being sent (out cannot: all-gather chunks arrive into it), `scratch` what arrives.
  void allreduce(const std::vector<float>& in, std::vector<float>& out) {
    const std::size_t n = in.size();
    partial_.resize(n);
    scratch_.resize(n);
    begin_.assign(world_ + 1, 0);
    for (int k = 0; k <= world_; ++k) begin_[k] = n * k / world_;
    const int steps = 2 * (world_ - 1);
    for (std::size_t c = 0; c < chunks_of(rank_); ++c) {
      auto [lo, hi] = range(rank_, c);
      queue(in.data() + lo, hi - lo, std::nullopt);
    }
    int step = 0;
    std::size_t chunk = 0;
    while (step < steps || !sends_.empty()) {
      pollfd fds[2];
      nfds_t count = 0;
      if (step < steps) fds[count++] = {left_, POLLIN, 0};
      if (!sends_.empty()) fds[count++] = {right_, POLLOUT, 0};
      if (poll(fds, count, 10000) <= 0) throw std::runtime_error("a neighbour went silent");
      pump_sends();
      while (step < steps) {
        const bool reducing = step < world_ - 1;
        const int g = reducing ? (rank_ + 2 * world_ - step - 1) % world_
                               : (rank_ + world_ - (step - (world_ - 1))) % world_;
        auto [lo, hi] = range(g, chunk);
        float* into = (reducing ? scratch_.data() : out.data()) + lo;
        if (!receive(into, (hi - lo) * sizeof(float))) break;
        std::uint32_t crc = header_.crc;
        if (checksum_) {
          bool finite = true;
          const std::uint32_t seen = ~crc32c_update(fastest_crc32c_kernel(), ~0u,
                                                    reinterpret_cast<const unsigned char*>(into),
                                                    (hi - lo) * sizeof(float), &finite);
          if (seen != header_.crc || !finite) throw std::runtime_error("a chunk failed its checksum");
        }
        if (transfer_only_) {
          if (step + 1 < steps) queue(into, hi - lo, crc);  // moved on as it came
        } else if (reducing) {
          const bool last = step == world_ - 2;
          float* o = (last ? out.data() : partial_.data()) + lo;
          const float* mine = in.data() + lo;
          if (last) {
            const float scale = 1.0f / static_cast<float>(world_);
            for (std::size_t k = 0; k < hi - lo; ++k) o[k] = (mine[k] + into[k]) * scale;
          } else {
            for (std::size_t k = 0; k < hi - lo; ++k) o[k] = mine[k] + into[k];
          }
          queue(o, hi - lo, std::nullopt);
        } else if (step + 1 < steps) {
          queue(into, hi - lo, crc);  // forwarded unchanged: its checksum is still valid
        }
        if (++chunk == chunks_of(g)) {
          chunk = 0;
          ++step;
        }
      }
    }
  }

 private:
  struct Send {
    ChunkHeader header;
    const char* data;
    std::size_t done;  // bytes of header + data written
  };

  std::size_t chunks_of(int g) const { return (begin_[g + 1] - begin_[g] + chunk_ - 1) / chunk_; }
  std::pair<std::size_t, std::size_t> range(int g, std::size_t c) const {
    const std::size_t lo = begin_[g] + c * chunk_;
    return {lo, std::min(begin_[g + 1], lo + chunk_)};
  }

  void queue(const float* data, std::size_t floats, std::optional<std::uint32_t> crc) {
    ChunkHeader h{0, static_cast<std::uint32_t>(floats * sizeof(float))};
    if (crc) {
      h.crc = *crc;
    } else if (checksum_) {
      h.crc = ~crc32c_update(fastest_crc32c_kernel(), ~0u,
                             reinterpret_cast<const unsigned char*>(data), h.bytes);
    }
    sends_.push_back({h, reinterpret_cast<const char*>(data), 0});
    pump_sends();
  }

  void pump_sends() {
    while (!sends_.empty()) {
      Send& s = sends_.front();
      iovec iov[2];
      int parts = 0;
      if (s.done < sizeof(ChunkHeader)) {
        iov[parts++] = {reinterpret_cast<char*>(&s.header) + s.done, sizeof(ChunkHeader) - s.done};
        iov[parts++] = {const_cast<char*>(s.data), s.header.bytes};
      } else {
        const std::size_t body = s.done - sizeof(ChunkHeader);
        iov[parts++] = {const_cast<char*>(s.data + body), s.header.bytes - body};
      }
      msghdr m{};
      m.msg_iov = iov;
      m.msg_iovlen = static_cast<std::size_t>(parts);
      const ssize_t sent = sendmsg(right_, &m, MSG_NOSIGNAL);
      if (sent < 0) {
        if (errno == EAGAIN) return;
        fail("send");
      }
      s.done += static_cast<std::size_t>(sent);
      if (s.done < sizeof(ChunkHeader) + s.header.bytes) return;
      sends_.pop_front();
    }
  }

  // Reads the next chunk's header and body (straight into `into`); false until it is whole.
  bool receive(float* into, std::size_t bytes) {
    while (got_ < sizeof(ChunkHeader) + bytes) {
      iovec iov[2];
      int parts = 0;
      char* body = reinterpret_cast<char*>(into);
      if (got_ < sizeof(ChunkHeader)) {
        iov[parts++] = {reinterpret_cast<char*>(&header_) + got_, sizeof(ChunkHeader) - got_};
        iov[parts++] = {body, bytes};
      } else {
        iov[parts++] = {body + (got_ - sizeof(ChunkHeader)), bytes - (got_ - sizeof(ChunkHeader))};
      }
      msghdr m{};
      m.msg_iov = iov;
      m.msg_iovlen = static_cast<std::size_t>(parts);
      const ssize_t r = recvmsg(left_, &m, 0);
      if (r < 0) {
        if (errno == EAGAIN) return false;
        fail("receive");
      }
      if (r == 0) throw std::runtime_error("the left neighbour closed the connection");
      got_ += static_cast<std::size_t>(r);
    }
    if (header_.bytes != bytes) throw std::runtime_error("a chunk of the wrong size");
    got_ = 0;
    return true;
  }

  int rank_, world_, left_, right_;
  std::size_t chunk_;
  bool checksum_;
  bool transfer_only_;
  std::vector<std::size_t> begin_;
  std::vector<float> partial_, scratch_;
  std::deque<Send> sends_;
  ChunkHeader header_{};
  std::size_t got_ = 0;
};

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("raw_ring_probe: ring allreduce over plain TCP sockets (a design probe)");
  int rank = 0, iterations = 10, warmup = 2;
  std::vector<int> ports;
  std::size_t bytes = 16 << 20, chunk_bytes = 1 << 20;
  bool no_checksum = false, transfer_only = false;
  int socket_buffer_bytes = 0;
  app.add_option("--rank", rank)->required();
  app.add_option("--ports", ports, "every rank's listening port, in ring order")
      ->required()->delimiter(',');
  app.add_option("--bytes", bytes, "buffer size");
  app.add_option("--iterations", iterations);
  app.add_option("--warmup", warmup);
  app.add_option("--chunk-bytes", chunk_bytes);
  app.add_flag("--no-checksum", no_checksum, "skip the checksum and NaN/Inf scan (upper bound)");
  app.add_flag("--transfer-only", transfer_only,
               "move the ring's bytes only: no reduction, no checksum, no result (the floor)");
  app.add_option("--socket-buffer-bytes", socket_buffer_bytes,
                 "SO_SNDBUF and SO_RCVBUF; 0: the kernel's autotuning");
  CLI11_PARSE(app, argc, argv);
  const int world = static_cast<int>(ports.size());
  if (world < 2 || rank < 0 || rank >= world) {
    std::cerr << "raw_ring_probe: need at least two ports and 0 <= rank < their number\n";
    return 2;
  }
  try {
    auto [left, right] = connect_ring(rank, ports, socket_buffer_bytes);
    RawRing ring(rank, world, left, right, std::max<std::size_t>(1, chunk_bytes / sizeof(float)),
                 !no_checksum, transfer_only);
    const std::size_t n = bytes / sizeof(float);
    std::vector<float> in(n), out(n);
    for (std::size_t k = 0; k < n; ++k) in[k] = static_cast<float>(k % 1024) * static_cast<float>(rank + 1);
    std::vector<double> seconds;
    for (int it = 0; it < warmup + iterations; ++it) {
      const auto start = std::chrono::steady_clock::now();
      ring.allreduce(in, out);
      const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (it >= warmup) seconds.push_back(s);
    }
    const double mean_rank = (world + 1) / 2.0;
    for (std::size_t k = 0; !transfer_only && k < n; k += 997) {
      const double expected = static_cast<double>(k % 1024) * mean_rank;
      if (std::abs(out[k] - expected) > 1e-3 * std::max(1.0, expected)) {
        std::cerr << "raw_ring_probe: wrong result at " << k << "\n";
        return 4;
      }
    }
    std::sort(seconds.begin(), seconds.end());
    const double median = seconds[seconds.size() / 2];
    std::cout << nlohmann::json({{"rank", rank}, {"world", world}, {"bytes", bytes},
                                 {"checksum", !no_checksum && !transfer_only},
                                 {"transfer_only", transfer_only}, {"median_s", median},
                                 {"algbw_gbps", static_cast<double>(bytes) / median / 1e9}})
                     .dump()
              << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "raw_ring_probe: " << e.what() << "\n";
    return 3;
  }
}
