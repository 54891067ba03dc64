#pragma once
// The one-epoch Fashion-MNIST run the CPU and CUDA trainer tests share: batch 32, lr 0.02,
// momentum 0.9, on Debian's dataset-fashion-mnist.
#include <filesystem>
#include <string>

#include "topology/cluster_spec.h"

namespace starling::training::testing {

inline const std::string kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Whether the training images are there, compressed or not.
inline bool fashion_mnist_present() {
  return std::filesystem::exists(kFashionMnistDir + "/train-images-idx3-ubyte.gz") ||
         std::filesystem::exists(kFashionMnistDir + "/train-images-idx3-ubyte");
}

inline topology::TrainingSpec one_epoch_spec(const std::string& model, const std::string& device) {
  topology::TrainingSpec spec;
  spec.model = model;
  spec.dataset = "fashion-mnist";
  spec.batch_size = 32;
  spec.lr = 0.02;
  spec.momentum = 0.9;
  spec.epochs = 1;
  spec.device = device;
  return spec;
}

}  // namespace starling::training::testing
