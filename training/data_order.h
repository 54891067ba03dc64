#pragma once
// The order in which a node visits its shard: a fresh seeded permutation every epoch, consumed
// in batches. The whole state is (epoch, cursor): the permutation of an epoch is a pure function
// of (seed, node, epoch), so a checkpoint stores two integers and a resumed run visits exactly
// the samples an uninterrupted run would.
#include <cstdint>
#include <span>
#include <vector>

namespace starling::training {

class DataOrder {
 public:
  DataOrder(std::int64_t shard_size, std::uint64_t seed, std::uint64_t node_index);

  // Positions (into the shard) of the next batch: batch_size of them, or what is left of the
  // epoch if fewer; the next call after an epoch's last batch starts the next epoch. The span
  // stays valid until the next call.
  std::span<const std::int64_t> next_batch(std::int64_t batch_size);

  std::int64_t epoch() const { return epoch_; }    // epochs started before the current one
  std::int64_t cursor() const { return cursor_; }  // samples of the current epoch consumed
  double fractional_epoch() const;
  std::int64_t shard_size() const { return shard_size_; }

  // Throws TrainingError when the state does not fit this shard.
  void restore(std::int64_t epoch, std::int64_t cursor);

 private:
  void shuffle_for_epoch();

  std::int64_t shard_size_;
  std::uint64_t seed_;
  std::uint64_t node_index_;
  std::int64_t epoch_ = 0;
  std::int64_t cursor_ = 0;
  std::vector<std::int64_t> permutation_;
};

}  // namespace starling::training
