#pragma once
// Turning training.device ("auto", "cpu", "cuda", "cuda:N") into a LibTorch device. Compiles
// against CPU-only and CUDA builds of LibTorch alike: CUDA is only queried at run time.
#include <c10/core/Device.h>

#include <cstddef>
#include <string>

namespace starling::training {

// "auto" is a GPU when one is visible, else the CPU: cuda:(node_index mod GPUs), so that the
// nodes one machine runs (starlingctl up) spread over its GPUs instead of all taking cuda:0.
// Throws DeviceError naming training.device for a malformed name or a CUDA device that is
// not there.
c10::Device resolve_device(const std::string& name, std::size_t node_index);

}  // namespace starling::training
