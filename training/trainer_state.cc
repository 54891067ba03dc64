#include "training/trainer_state.h"

#include <cstring>

#include "training/byte_io.h"

namespace starling::training {
namespace {

constexpr const char* kExtraPrefix = "extra/";

std::vector<std::uint8_t> float_bytes(const std::vector<float>& values) {
  std::vector<std::uint8_t> out(values.size() * sizeof(float));
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

const std::vector<std::uint8_t>& section(const CheckpointSections& sections,
                                         const std::string& name, const std::string& path) {
  auto it = sections.find(name);
  if (it == sections.end()) throw TrainingError(path + ": missing section \"" + name + "\"");
  return it->second;
}

std::vector<float> floats(const CheckpointSections& sections, const std::string& name,
                          const std::string& path) {
  const auto& bytes = section(sections, name, path);
  if (bytes.size() % sizeof(float) != 0) {
    throw TrainingError(path + ": section \"" + name + "\" holds " +
                        std::to_string(bytes.size()) + " bytes, not a whole number of floats");
  }
  std::vector<float> out(bytes.size() / sizeof(float));
  if (!out.empty()) std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

}  // namespace

CheckpointSections encode_state(const TrainerState& state) {
  ByteWriter meta;
  meta.u64(state.fingerprint);
  meta.u64(state.parameter_count);
  meta.u64(state.shard_index);
  meta.u64(state.shard_count);
  meta.i64(state.shard_size);
  meta.i64(state.step);
  meta.i64(state.samples_seen);
  meta.i64(state.data_epoch);
  meta.i64(state.data_cursor);
  CheckpointSections sections;
  sections["meta"] = std::move(meta.buffer());
  sections["parameters"] = float_bytes(state.parameters);
  sections["momentum"] = float_bytes(state.momentum);
  sections["torch_rng"] = state.torch_rng;
  for (const auto& [name, blob] : state.extras) sections[kExtraPrefix + name] = blob;
  return sections;
}

TrainerState decode_state(const CheckpointSections& sections, const std::string& path) {
  TrainerState state;
  ByteReader meta(section(sections, "meta", path), path + " (meta)");
  state.fingerprint = meta.u64();
  state.parameter_count = meta.u64();
  state.shard_index = meta.u64();
  state.shard_count = meta.u64();
  state.shard_size = meta.i64();
  state.step = meta.i64();
  state.samples_seen = meta.i64();
  state.data_epoch = meta.i64();
  state.data_cursor = meta.i64();
  if (meta.remaining() != 0) throw TrainingError(path + ": meta section has trailing bytes");
  if (state.step < 0 || state.samples_seen < 0) {
    throw TrainingError(path + ": negative step or sample count");
  }
  state.parameters = floats(sections, "parameters", path);
  if (state.parameters.size() != state.parameter_count) {
    throw TrainingError(path + ": holds " + std::to_string(state.parameters.size()) +
                        " parameters but its meta section says " +
                        std::to_string(state.parameter_count));
  }
  state.momentum = floats(sections, "momentum", path);
  state.torch_rng = section(sections, "torch_rng", path);
  const std::string prefix = kExtraPrefix;
  for (const auto& [name, blob] : sections) {
    if (name.rfind(prefix, 0) == 0) {
      state.extras.emplace(name.substr(prefix.size()), blob);
    } else if (name != "meta" && name != "parameters" && name != "momentum" &&
               name != "torch_rng") {
      throw TrainingError(path + ": unknown section \"" + name + "\"");
    }
  }
  return state;
}

}  // namespace starling::training
