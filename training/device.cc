#include "training/device.h"

#include <torch/cuda.h>

#include <algorithm>
#include <cctype>

#include "training/trainer.h"

namespace starling::training {

std::size_t cuda_device_count() {
  return torch::cuda::is_available() ? torch::cuda::device_count() : 0;
}

c10::Device resolve_device(const std::string& name, std::size_t node_index) {
  const bool have_cuda = torch::cuda::is_available();
  if (name == "auto") {
    if (!have_cuda) return c10::Device(c10::kCPU);
    const std::size_t gpus = torch::cuda::device_count();
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(node_index % gpus));
  }
  if (name == "cpu") return c10::Device(c10::kCPU);
  int index = 0;
  if (name != "cuda") {
    const std::string digits = name.rfind("cuda:", 0) == 0 ? name.substr(5) : "";
    if (digits.empty() || digits.size() > 4 ||
        !std::all_of(digits.begin(), digits.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
      throw DeviceError("training.device: \"" + name +
                          "\" is not valid; use \"auto\", \"cpu\", \"cuda\" or \"cuda:N\"");
    }
    index = std::stoi(digits);
  }
  if (!have_cuda) {
    throw DeviceError("training.device: \"" + name +
                        "\" asked for, but this LibTorch has no usable CUDA device (CPU-only "
                        "build, no driver, or no GPU); use \"cpu\" or \"auto\"");
  }
  const auto count = static_cast<int>(torch::cuda::device_count());
  if (index >= count) {
    throw DeviceError("training.device: \"" + name + "\" does not exist; this machine has " +
                        std::to_string(count) + " CUDA device(s)");
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}  // namespace starling::training
