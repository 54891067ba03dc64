// Speed of every CRC-32C kernel this CPU has, on a chunk that stays in cache (256 KiB, the
// allreduce's chunk size) and on one that does not (16 MiB), with and without the NaN/Inf
// scan. Prints GB/s and the ratio to the sse4.2 kernel measured in the same run.
//   build/bench/checksum_speed
#include <chrono>
#include <cstdio>
#include <vector>

#include "gossip/crc32c_kernels.h"

using starling::gossip::detail::available_crc32c_kernels;
using starling::gossip::detail::Crc32cKernel;
using starling::gossip::detail::crc32c_update;
using starling::gossip::detail::name_of;

namespace {

double gigabytes_per_second(Crc32cKernel kernel, const std::vector<unsigned char>& data, bool scan) {
  const std::size_t target_bytes = std::size_t{2} << 30;  // about 2 GB per measurement
  const std::size_t repeats = target_bytes / data.size() + 1;
  double best = 0;
  for (int trial = 0; trial < 3; ++trial) {
    volatile std::uint32_t sink = 0;
    bool finite = true;
    const auto start = std::chrono::steady_clock::now();
    for (std::size_t r = 0; r < repeats; ++r) {
      sink = sink + crc32c_update(kernel, ~0u, data.data(), data.size(), scan ? &finite : nullptr);
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double rate = static_cast<double>(repeats * data.size()) / seconds / 1e9;
    if (rate > best) best = rate;
  }
  return best;
}

}  // namespace

int main() {
  std::printf("%-28s %10s %6s %9s %9s\n", "kernel", "size", "scan", "GB/s", "vs sse4.2");
  for (std::size_t size : {std::size_t{256} << 10, std::size_t{16} << 20}) {
    std::vector<unsigned char> data(size);
    for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<unsigned char>(i * 2654435761u >> 13);
    for (bool scan : {false, true}) {
      double sse42 = 0;
      for (Crc32cKernel kernel : available_crc32c_kernels()) {
        if (kernel == Crc32cKernel::table && size > (std::size_t{1} << 20)) continue;  // too slow
        const double rate = gigabytes_per_second(kernel, data, scan);
        if (kernel == Crc32cKernel::sse42) sse42 = rate;
        std::printf("%-28s %8zuKi %6s %9.2f %8.2fx\n", std::string(name_of(kernel)).c_str(),
                    size >> 10, scan ? "yes" : "no", rate, sse42 > 0 ? rate / sse42 : 0.0);
      }
    }
  }
}
