#include "daemon/default_cluster.h"

namespace starling::daemon {

std::string default_cluster_text(const std::vector<int>& ports, const std::string& run_dir) {
  std::string text = R"(# Starling's default cluster (written by `starlingctl up`; run it again with
#   starlingctl up <this file>
# after editing). Four nodes on a ring on this machine train an MLP on Fashion-MNIST, each on a
# quarter of the data, and gossip with their two neighbours every 8 local steps.
[cluster]
name = "fmnist-ring4"
seed = 1

[topology]
kind = "ring"
weights = "metropolis"

[training]
model = "mlp"
dataset = "fashion-mnist"
partition = "iid"
batch_size = 32
lr = 0.05
momentum = 0.9
lr_schedule = "cosine"
epochs = 60
weight_decay = 0.0005
threads = 1

[sync]
mode = "gossip"
period = 8
)";
  for (std::size_t i = 0; i < ports.size(); ++i) {
    std::string id = "n" + std::to_string(i);
    text += "\n[[node]]\nid = \"" + id + "\"\nendpoint = \"tcp://127.0.0.1:" +
            std::to_string(ports[i]) + "\"\ncontrol = \"ipc://" + run_dir + "/" + id +
            "/control.sock\"\n";
  }
  return text;
}

}  // namespace starling::daemon
