// Starling's side of the training benchmarks, through the same Trainer facade the daemon uses.
//
//   throughput: training samples/s of steady-state steps (after warmup), one JSON line.
//   evaluate: seconds for one evaluation of the whole test set (after one warm-up pass).
//   time-to-accuracy: trains until the test accuracy reaches a target, evaluating every
//     --eval-every steps; reports epochs and wall time (training only, and with evaluation).
//
// The PyTorch peer is bench/pytorch_train.py; bench/run_training_bench.sh runs both in one go.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <time.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "training/trainer.h"

namespace {

using Clock = std::chrono::steady_clock;
using starling::training::Trainer;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU time of the whole process (all threads): on a shared machine it is less disturbed by
// other processes than wall time, so it is reported next to it.
double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

nlohmann::json measure_throughput(Trainer& trainer, int warmup_steps, double min_seconds) {
  for (int i = 0; i < warmup_steps; ++i) trainer.step();
  // Whole steps until at least min_seconds have passed; the clock is read once per step.
  std::int64_t samples = 0, steps = 0;
  const auto start = Clock::now();
  const double cpu_start = process_cpu_seconds();
  double elapsed = 0;
  while (elapsed < min_seconds) {
    samples += trainer.step().samples;
    ++steps;
    elapsed = seconds_since(start);
  }
  const double cpu = process_cpu_seconds() - cpu_start;
  return {{"steps", steps},
          {"seconds", elapsed},
          {"cpu_seconds", cpu},
          {"samples_per_s", static_cast<double>(samples) / elapsed},
          {"samples_per_cpu_s", static_cast<double>(samples) / cpu}};
}

nlohmann::json time_to_accuracy(Trainer& trainer, double target, std::int64_t eval_every) {
  double train_seconds = 0;
  const auto start = Clock::now();
  nlohmann::json curve = nlohmann::json::array();
  while (!trainer.finished()) {
    const auto chunk_start = Clock::now();
    for (std::int64_t i = 0; i < eval_every && !trainer.finished(); ++i) trainer.step();
    train_seconds += seconds_since(chunk_start);
    const auto result = trainer.evaluate();
    curve.push_back({{"epoch", trainer.epoch()}, {"accuracy", result.accuracy},
                     {"train_seconds", train_seconds}});
    std::fprintf(stderr, "epoch %.2f  test accuracy %.4f  loss %.4f  lr %.4g  %.1f s\n",
                 trainer.epoch(), result.accuracy, result.loss, trainer.lr(), train_seconds);
    if (result.accuracy >= target) {
      return {{"reached", true}, {"epochs", trainer.epoch()}, {"steps", trainer.step_count()},
              {"accuracy", result.accuracy}, {"train_seconds", train_seconds},
              {"wall_seconds", seconds_since(start)}, {"curve", curve}};
    }
  }
  return {{"reached", false}, {"epochs", trainer.epoch()}, {"train_seconds", train_seconds},
          {"wall_seconds", seconds_since(start)}, {"curve", curve}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Starling training benchmark"};
  starling::topology::TrainingSpec spec;
  spec.device = "cpu";
  std::string mode = "throughput";
  int warmup_steps = 50;
  double min_seconds = 5;
  double target = 0;
  std::int64_t eval_every = 0;
  std::string schedule_milestones;
  app.add_option("--mode", mode, "throughput | time-to-accuracy | evaluate")
      ->check(CLI::IsMember({"throughput", "time-to-accuracy", "evaluate"}));
  app.add_option("--model", spec.model)->check(CLI::IsMember({"logreg", "mlp", "cnn"}));
  app.add_option("--dataset", spec.dataset);
  app.add_option("--data-dir", spec.data_dir);
  app.add_option("--batch", spec.batch_size);
  app.add_option("--lr", spec.lr);
  app.add_option("--momentum", spec.momentum);
  app.add_option("--nesterov", spec.nesterov);
  app.add_option("--weight-decay", spec.weight_decay);
  app.add_option("--schedule", spec.lr_schedule);
  app.add_option("--milestones", spec.milestones, "epochs (step schedule)");
  app.add_option("--gamma", spec.gamma);
  app.add_option("--warmup-lr-steps", spec.warmup_steps);
  app.add_option("--epochs", spec.epochs);
  app.add_option("--threads", spec.threads);
  app.add_option("--eval-batch", spec.eval_batch_size);
  app.add_option("--device", spec.device);
  app.add_option("--warmup", warmup_steps, "untimed steps before measuring (throughput)");
  app.add_option("--seconds", min_seconds, "minimum measured time (throughput)");
  app.add_option("--target", target, "test accuracy to reach (time-to-accuracy)");
  app.add_option("--eval-every", eval_every, "steps between evaluations; 0: each epoch");
  CLI11_PARSE(app, argc, argv);

  try {
    spec.max_steps = 0;
    if (mode == "throughput") spec.epochs = 1e6;  // never finishes while measuring
    const auto build_start = Clock::now();
    Trainer trainer(spec, starling::training::NodeShard{0, 1, 1});
    nlohmann::json out = {{"impl", "starling"},          {"mode", mode},
                          {"model", spec.model},         {"batch", spec.batch_size},
                          {"threads", spec.threads},     {"lr", spec.lr},
                          {"momentum", spec.momentum},   {"device", trainer.device()},
                          {"setup_seconds", seconds_since(build_start)}};
    if (mode == "throughput") {
      out.update(measure_throughput(trainer, warmup_steps, min_seconds));
    } else if (mode == "evaluate") {
      trainer.evaluate();  // warm up
      const auto result = trainer.evaluate();
      out.update({{"eval_batch", spec.eval_batch_size}, {"eval_seconds", result.seconds},
                  {"eval_samples_per_s", static_cast<double>(result.samples) / result.seconds}});
    } else {
      out.update(time_to_accuracy(trainer, target,
                                  eval_every > 0 ? eval_every : trainer.steps_per_epoch()));
      out["schedule"] = spec.lr_schedule;
      out["epochs_budget"] = spec.epochs;
    }
    std::cout << out.dump() << std::endl;
  } catch (const std::exception& e) {
    std::cerr << "train_throughput: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
