#pragma once
// SlowLink: two hosts made on this machine, each a network namespace, joined by a veth pair
// whose ends are both shaped by a token bucket (`tc qdisc ... tbf`): a link of a given rate
// and queue, for tests of what a daemon does when its peer is far away rather than dead.
// (`tc netem` is not available here; tbf is.) Needs root, iproute2 and the kernel's sch_tbf;
// where any is missing, ok() is false and error() says what failed, so the test can skip.
#include <chrono>
#include <string>

namespace starling::testing {

class SlowLink {
 public:
  // rate: as tc writes it ("20mbit"); queue: how long the bucket may hold packets back.
  SlowLink(const std::string& rate, std::chrono::milliseconds queue);
  ~SlowLink();  // deletes both namespaces (and with them the veth pair)
  SlowLink(const SlowLink&) = delete;
  SlowLink& operator=(const SlowLink&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::string& namespace_of(int side) const { return side == 0 ? ns_a_ : ns_b_; }
  std::string address_of(int side) const { return side == 0 ? "10.213.0.1" : "10.213.0.2"; }

 private:
  bool step(const std::string& command);  // runs it; records the first failure in error_

  std::string ns_a_;
  std::string ns_b_;
  std::string error_;
};

}  // namespace starling::testing
