#pragma once
// SyncStrategy: what a node does about the other nodes while it trains, one implementation per
// [sync] mode. The node's training thread drives it: start() once before the first step,
// step() to run one training step (a strategy may replace the plain local step, as
// synchronous allreduce does), after_step() at every step boundary (the only place a strategy
// may write the model), finish() once after the last step. status() is called from the
// control thread and must only read state the strategy publishes under its own lock.
#include <nlohmann/json.hpp>
#include <functional>
#include <string>

#include "training/trainer.h"

namespace starling::daemon {

class SyncStrategy {
 public:
  virtual ~SyncStrategy() = default;

  virtual std::string mode() const = 0;
  virtual void start(training::Trainer& /*trainer*/) {}
  virtual training::StepResult step(training::Trainer& trainer) { return trainer.step(); }
  virtual void after_step(training::Trainer& trainer) = 0;
  // Ends the sync work: `stopping` is true when the node was asked to stop early (no extra
  // rounds then, only what keeps the model consistent).
  virtual void finish(training::Trainer& /*trainer*/, bool /*stopping*/) {}

  virtual void save_state(training::CheckpointExtras& /*extras*/) const {}
  virtual void restore_state(const training::CheckpointExtras& /*extras*/) {}

  virtual nlohmann::json status() const { return nlohmann::json::object(); }
  // The node's latest estimate of its distance from the others' models (0 when it trains alone).
  virtual double consensus_distance() const { return 0.0; }

  // Called every few milliseconds while start() waits for peers (up to startup_timeout):
  // returns true when the node was asked to stop, which ends the wait at once. The node also
  // uses it to show it is alive (systemd's watchdog) during the wait.
  void set_stop_check(std::function<bool()> check) { stop_check_ = std::move(check); }

 protected:
  std::function<bool()> stop_check_;
};

// mode = "local": trains alone, exchanges nothing (the speed ceiling and the baseline).
class LocalSync final : public SyncStrategy {
 public:
  std::string mode() const override { return "local"; }
  void after_step(training::Trainer& /*trainer*/) override {}
};

}  // namespace starling::daemon
