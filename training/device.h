#pragma once
// Turning training.device ("auto", "cpu", "cuda", "cuda:N") into a LibTorch device. Compiles
// against CPU-only and CUDA builds of LibTorch alike: CUDA is only queried at run time.
#include <c10/core/Device.h>

#include <string>

namespace starling::training {

// "auto" is cuda:0 when a GPU is visible, else the CPU. Throws TrainingError naming
// training.device for a malformed name or a CUDA device that is not there.
c10::Device resolve_device(const std::string& name);

}  // namespace starling::training
