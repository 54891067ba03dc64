// The protocol fingerprint changes with every setting the nodes must share, and with nothing
// that may differ from host to host.
#include <gtest/gtest.h>

#include "topology/cluster_file.h"
#include "topology/protocol_fingerprint.h"

namespace starling::topology {
namespace {

std::uint64_t fingerprint_of(const std::string& topology, const std::string& sync,
                             const std::string& node_extra = "", const std::string& training = "",
                             const std::string& name = "c", const std::string& first_id = "n0") {
  std::string text = "[cluster]\nname = \"" + name + "\"\n[topology]\n" + topology +
                     "\n[training]\nmodel = \"mlp\"\n" + training + "\n[sync]\n" + sync + "\n";
  for (int i = 0; i < 4; ++i) {
    text += "[[node]]\nid = \"" + (i == 0 ? first_id : "n" + std::to_string(i)) +
            "\"\nendpoint = \"tcp://127.0.0.1:" + std::to_string(7000 + i) + "\"\n" +
            (i == 0 ? node_extra : "") + "\n";
  }
  return protocol_fingerprint(parse_cluster_text(text, "test.toml"));
}

TEST(ProtocolFingerprint, ChangesWithWhatTheNodesMustShare) {
  const std::string ring = "kind = \"ring\"";
  const std::string gossip = "mode = \"gossip\"\nperiod = 8";
  const auto base = fingerprint_of(ring, gossip);
  EXPECT_EQ(fingerprint_of(ring, gossip), base);
  EXPECT_NE(fingerprint_of(ring, "mode = \"gossip\"\nperiod = 4"), base);
  EXPECT_NE(fingerprint_of(ring, gossip + "\nstaleness = 0"), base);
  EXPECT_NE(fingerprint_of(ring, gossip + "\nwire_precision = \"f16\""), base);
  EXPECT_NE(fingerprint_of(ring, gossip + "\nwire_precision = \"int8\""), base);
  EXPECT_NE(fingerprint_of(ring, gossip + "\nwire_precision = \"int8\""),
            fingerprint_of(ring, gossip + "\nwire_precision = \"f16\""));
  EXPECT_NE(fingerprint_of(ring, gossip + "\nfinal_allreduce = true"), base);
  EXPECT_NE(fingerprint_of(ring, gossip + "\nfinal_rounds = 2"), base);
  const auto scheduled =
      fingerprint_of(ring, gossip + "\nperiod_schedule = [{ until_step = 100, period = 4 }]");
  EXPECT_NE(scheduled, base);
  EXPECT_NE(fingerprint_of(ring, gossip + "\nperiod_schedule = [{ until_step = 101, period = 4 }]"),
            scheduled);
  EXPECT_NE(fingerprint_of(ring, gossip + "\nperiod_schedule = [{ until_step = 100, period = 2 }]"),
            scheduled);
  EXPECT_NE(fingerprint_of(ring, "mode = \"allreduce\"\nperiod = 8"), base);
  EXPECT_NE(fingerprint_of("kind = \"complete\"", gossip), base);
  EXPECT_NE(fingerprint_of(ring + "\nweights = \"uniform\"", gossip), base);
  EXPECT_NE(fingerprint_of(ring, gossip, "", "", "other"), base);
  EXPECT_NE(fingerprint_of(ring, gossip, "", "", "c", "first"), base);
  EXPECT_NE(fingerprint_of(ring, gossip, "", "epochs = 2"), base);
  EXPECT_NE(fingerprint_of(ring, gossip, "", "batch_size = 64"), base);
  EXPECT_NE(fingerprint_of(ring, gossip, "", "max_train_samples = 1000"), base);
}

TEST(ProtocolFingerprint, IgnoresWhatMayDifferFromHostToHost) {
  const std::string ring = "kind = \"ring\"";
  const std::string gossip = "mode = \"gossip\"\nperiod = 8";
  const auto base = fingerprint_of(ring, gossip);
  EXPECT_EQ(fingerprint_of(ring, gossip + "\nround_timeout_ms = 5000\nheartbeat_ms = 100\n"
                                          "suspect_after_ms = 2000\ndead_after_ms = 6000"),
            base);
  EXPECT_EQ(fingerprint_of(ring, gossip, "control = \"tcp://127.0.0.1:9000\"\ndevice = \"cpu\""),
            base);
  EXPECT_EQ(fingerprint_of(ring, gossip, "", "lr = 0.1\nmomentum = 0.5\neval_every = 10"), base);
}

}  // namespace
}  // namespace starling::topology
