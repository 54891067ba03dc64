#include "training/host_dataset.h"

#include "training/trainer.h"

namespace starling::training {
namespace {

// Size of the generated dataset; max_train_samples can only shrink the training part.
constexpr std::int64_t kSyntheticTrain = 12000;
constexpr std::int64_t kSyntheticTest = 2000;

void keep_first(HostDataset& data, std::int64_t count) {
  if (count <= 0 || count >= data.samples) return;
  data.samples = count;
  data.images.resize(static_cast<std::size_t>(count * data.features));
  data.images.shrink_to_fit();
  data.labels.resize(static_cast<std::size_t>(count));
}

}  // namespace

std::string default_data_dir(const std::string& dataset) { return "/usr/share/datasets/" + dataset; }

std::string check_dataset_files(const topology::TrainingSpec& spec) {
  if (spec.dataset == "synthetic") return "";
  const std::string dir = spec.data_dir.empty() ? default_data_dir(spec.dataset) : spec.data_dir;
  check_idx_files(dir);
  return dir;
}

HostDatasetSplits load_dataset(const topology::TrainingSpec& spec, std::uint64_t seed) {
  HostDatasetSplits splits;
  if (spec.dataset == "synthetic") {
    const std::int64_t train = spec.max_train_samples > 0
                                   ? std::min(spec.max_train_samples, kSyntheticTrain)
                                   : kSyntheticTrain;
    splits = make_synthetic_dataset(seed, train, kSyntheticTest);
  } else if (spec.dataset == "fashion-mnist" || spec.dataset == "mnist") {
    splits = load_idx_dataset(spec.data_dir.empty() ? default_data_dir(spec.dataset)
                                                    : spec.data_dir);
  } else {
    throw TrainingError("training.dataset: \"" + spec.dataset +
                        "\" is not a dataset; use \"fashion-mnist\", \"mnist\" or \"synthetic\"");
  }
  if (spec.max_train_samples < 0) throw TrainingError("training.max_train_samples: must be >= 0");
  keep_first(splits.train, spec.max_train_samples);
  return splits;
}

}  // namespace starling::training
