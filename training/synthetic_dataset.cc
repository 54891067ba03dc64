#include <cmath>

#include "training/host_dataset.h"
#include "training/model_layout.h"
#include "training/rng.h"
#include "training/trainer.h"

namespace starling::training {
namespace {

constexpr std::uint64_t kMeansTag = 0x5E;
constexpr std::uint64_t kTrainTag = 0x7A;
constexpr std::uint64_t kTestTag = 0x7E;
// Class means are coarse 7x7 patterns blown up to 28x28 (4x4 blocks), so the signal survives
// convolution and pooling as well as it suits a linear model. Their scale against the unit
// noise makes the problem learnable in a few hundred steps but not solved at once.
constexpr std::int64_t kPatternSide = 7;
constexpr std::int64_t kBlock = kImageSide / kPatternSide;
constexpr double kMeanScale = 0.2;

HostDataset draw(const std::vector<float>& means, Rng rng, std::int64_t samples,
                 const std::string& source) {
  HostDataset out;
  out.samples = samples;
  out.features = kImagePixels;
  out.source = source;
  out.images.resize(static_cast<std::size_t>(samples * kImagePixels));
  out.labels.resize(static_cast<std::size_t>(samples));
  for (std::int64_t i = 0; i < samples; ++i) {
    const std::int64_t label = static_cast<std::int64_t>(rng.below(kClasses));
    out.labels[static_cast<std::size_t>(i)] = label;
    const float* mean = means.data() + label * kImagePixels;
    float* x = out.images.data() + i * kImagePixels;
    for (std::int64_t j = 0; j < kImagePixels; ++j) {
      x[j] = mean[j] + static_cast<float>(rng.normal());
    }
  }
  return out;
}

}  // namespace

HostDatasetSplits make_synthetic_dataset(std::uint64_t seed, std::int64_t train_samples,
                                         std::int64_t test_samples) {
  if (train_samples <= 0 || test_samples <= 0) {
    throw TrainingError("synthetic dataset: sample counts must be positive");
  }
  Rng mean_rng = Rng::stream(seed, {kMeansTag});
  std::vector<float> means(static_cast<std::size_t>(kClasses * kImagePixels));
  for (std::int64_t c = 0; c < kClasses; ++c) {
    std::vector<float> pattern(static_cast<std::size_t>(kPatternSide * kPatternSide));
    for (float& v : pattern) v = static_cast<float>(kMeanScale * mean_rng.normal());
    for (std::int64_t row = 0; row < kImageSide; ++row) {
      for (std::int64_t col = 0; col < kImageSide; ++col) {
        means[static_cast<std::size_t>(c * kImagePixels + row * kImageSide + col)] =
            pattern[static_cast<std::size_t>((row / kBlock) * kPatternSide + col / kBlock)];
      }
    }
  }
  return {draw(means, Rng::stream(seed, {kTrainTag}), train_samples, "synthetic(train)"),
          draw(means, Rng::stream(seed, {kTestTag}), test_samples, "synthetic(test)")};
}

}  // namespace starling::training
