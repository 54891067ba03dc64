#include <cmath>
#include <filesystem>

#include "training/host_dataset.h"
#include "training/idx_file.h"
#include "training/model_layout.h"
#include "training/trainer.h"

namespace starling::training {
namespace {

// The .gz name Debian and the original distribution use; an uncompressed copy (same name
// without .gz) is accepted when the .gz is absent.
std::string locate(const std::filesystem::path& dir, const std::string& stem) {
  const std::filesystem::path gz = dir / (stem + ".gz");
  std::error_code ec;
  if (!std::filesystem::exists(gz, ec) && std::filesystem::exists(dir / stem, ec)) {
    return (dir / stem).string();
  }
  return gz.string();
}

struct RawSplit {
  IdxArray images;
  IdxArray labels;
  std::string images_path;
  std::string labels_path;
};

RawSplit read_split(const std::filesystem::path& dir, const std::string& prefix) {
  RawSplit split;
  split.images_path = locate(dir, prefix + "-images-idx3-ubyte");
  split.labels_path = locate(dir, prefix + "-labels-idx1-ubyte");
  split.images = read_idx_file(split.images_path, 3);
  split.labels = read_idx_file(split.labels_path, 1);
  if (split.images.dims[1] != kImageSide || split.images.dims[2] != kImageSide) {
    throw TrainingError(split.images_path + ": images are " +
                        std::to_string(split.images.dims[1]) + "x" +
                        std::to_string(split.images.dims[2]) + ", expected 28x28");
  }
  if (split.images.dims[0] != split.labels.dims[0]) {
    throw TrainingError(split.images_path + " holds " + std::to_string(split.images.dims[0]) +
                        " images but " + split.labels_path + " holds " +
                        std::to_string(split.labels.dims[0]) + " labels");
  }
  for (std::uint8_t label : split.labels.data) {
    if (label >= kClasses) {
      throw TrainingError(split.labels_path + ": label " + std::to_string(label) +
                          " is outside 0..9");
    }
  }
  return split;
}

HostDataset normalise(const RawSplit& raw, double mean, double stddev) {
  HostDataset out;
  out.samples = raw.images.dims[0];
  out.features = kImagePixels;
  out.source = raw.images_path;
  out.images.resize(raw.images.data.size());
  // x -> (x/255 - mean) / std, as one multiply-add per pixel.
  const float scale = static_cast<float>(1.0 / (255.0 * stddev));
  const float shift = static_cast<float>(-mean / stddev);
  for (std::size_t i = 0; i < raw.images.data.size(); ++i) {
    out.images[i] = static_cast<float>(raw.images.data[i]) * scale + shift;
  }
  out.labels.assign(raw.labels.data.begin(), raw.labels.data.end());
  return out;
}

void require_dataset_directory(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    throw TrainingError(dir + ": dataset directory does not exist (set training.data_dir to a "
                              "folder of IDX files; Debian's dataset-fashion-mnist package puts "
                              "Fashion-MNIST at /usr/share/datasets/fashion-mnist)");
  }
}

}  // namespace

void check_idx_files(const std::string& dir) {
  require_dataset_directory(dir);
  for (const char* stem : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                           "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}) {
    const std::string path = locate(dir, stem);
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) {
      throw TrainingError(path + ": missing (neither it nor " + stem + " is in " + dir + ")");
    }
  }
  // Present is not enough: a truncated download or a file of another kind would only show
  // when the node starts. Reading both splits checks what loading checks (IDX headers, 28x28
  // images, as many labels as images, labels 0..9, payload lengths, gzip integrity); about
  // a second for Fashion-MNIST.
  read_split(dir, "train");
  read_split(dir, "t10k");
}

HostDatasetSplits load_idx_dataset(const std::string& dir) {
  require_dataset_directory(dir);
  RawSplit train = read_split(dir, "train");
  RawSplit test = read_split(dir, "t10k");
  // Statistics of the training images, applied to both splits.
  double sum = 0, sum_sq = 0;
  for (std::uint8_t v : train.images.data) {
    const double x = v / 255.0;
    sum += x;
    sum_sq += x * x;
  }
  const double n = static_cast<double>(train.images.data.size());
  const double mean = sum / n;
  const double stddev = std::sqrt(std::max(sum_sq / n - mean * mean, 1e-12));
  return {normalise(train, mean, stddev), normalise(test, mean, stddev)};
}

}  // namespace starling::training
