#pragma once
// Datasets as plain host memory, before they become tensors: float images already normalised
// (zero mean, unit variance over the training images), int64 labels. Loading and generating
// here needs no LibTorch; the trainer wraps these buffers as tensors without copying per sample.
#include <cstdint>
#include <string>
#include <vector>

#include "topology/cluster_spec.h"

namespace starling::training {

struct HostDataset {
  std::int64_t samples = 0;
  std::int64_t features = 0;       // 784: 28x28 single-channel images, row-major
  std::vector<float> images;       // samples * features
  std::vector<std::int64_t> labels;
  std::string source;              // where it came from, for logs
};

struct HostDatasetSplits {
  HostDataset train;
  HostDataset test;
};

// Loads the dataset a TrainingSpec names: "fashion-mnist" or "mnist" from IDX files in
// spec.data_dir (empty: /usr/share/datasets/<name>), or "synthetic" generated from `seed`.
// Applies spec.max_train_samples (keeps the first N training samples). Throws TrainingError.
HostDatasetSplits load_dataset(const topology::TrainingSpec& spec, std::uint64_t seed);

// The four IDX files of an MNIST-layout directory, checked and normalised. Errors name the file.
HostDatasetSplits load_idx_dataset(const std::string& dir);

// A learnable 10-class problem in 784 dimensions: class means drawn from `seed`, samples are
// mean + unit Gaussian noise. Every node that uses the same seed gets the same data.
HostDatasetSplits make_synthetic_dataset(std::uint64_t seed, std::int64_t train_samples,
                                         std::int64_t test_samples);

std::string default_data_dir(const std::string& dataset);

// Whether the files a TrainingSpec's dataset needs are where it will look and load (for
// `starlingd --check`): returns the directory checked, or "" for "synthetic". Throws
// TrainingError naming the missing directory, or the missing or unreadable file and why.
std::string check_dataset_files(const topology::TrainingSpec& spec);
// The same for the four IDX files of an MNIST-layout directory: present, then read whole.
void check_idx_files(const std::string& dir);

}  // namespace starling::training
