#include "training/data_order.h"

#include <algorithm>
#include <numeric>
#include <string>

#include "training/rng.h"
#include "training/trainer.h"

namespace starling::training {
namespace {
constexpr std::uint64_t kDataOrderTag = 0xDA7A;
}

DataOrder::DataOrder(std::int64_t shard_size, std::uint64_t seed, std::uint64_t node_index)
    : shard_size_(shard_size), seed_(seed), node_index_(node_index) {
  if (shard_size_ <= 0) throw TrainingError("data order: the shard has no samples");
  permutation_.resize(static_cast<std::size_t>(shard_size_));
  shuffle_for_epoch();
}

void DataOrder::shuffle_for_epoch() {
  std::iota(permutation_.begin(), permutation_.end(), std::int64_t{0});
  Rng rng = Rng::stream(seed_, {kDataOrderTag, node_index_, static_cast<std::uint64_t>(epoch_)});
  rng.shuffle(std::span(permutation_));
}

std::span<const std::int64_t> DataOrder::next_batch(std::int64_t batch_size) {
  if (batch_size <= 0) throw TrainingError("training.batch_size: must be positive");
  if (cursor_ == shard_size_) {
    ++epoch_;
    cursor_ = 0;
    shuffle_for_epoch();
  }
  const std::int64_t count = std::min(batch_size, shard_size_ - cursor_);
  std::span<const std::int64_t> batch(permutation_.data() + cursor_,
                                      static_cast<std::size_t>(count));
  cursor_ += count;
  return batch;
}

double DataOrder::fractional_epoch() const {
  return static_cast<double>(epoch_) +
         static_cast<double>(cursor_) / static_cast<double>(shard_size_);
}

void DataOrder::restore(std::int64_t epoch, std::int64_t cursor) {
  if (epoch < 0 || cursor < 0 || cursor > shard_size_) {
    throw TrainingError("data order: position (epoch " + std::to_string(epoch) + ", sample " +
                        std::to_string(cursor) + ") does not fit a shard of " +
                        std::to_string(shard_size_) + " samples");
  }
  epoch_ = epoch;
  cursor_ = cursor;
  shuffle_for_epoch();
}

}  // namespace starling::training
