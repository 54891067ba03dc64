#include "support/slow_link.h"

#include <unistd.h>

#include <cstdlib>

#include "support/local_cluster.h"

namespace starling::testing {

SlowLink::SlowLink(const std::string& rate, std::chrono::milliseconds queue) {
  if (::geteuid() != 0) {
    error_ = "needs root (network namespaces)";
    return;
  }
  // Unique per process: tests of several runs may share the machine.
  const std::string tag = "stl" + std::to_string(::getpid());
  ns_a_ = tag + "a";
  ns_b_ = tag + "b";
  const std::string veth_a = tag + "x";  // interface names: at most 15 characters
  const std::string veth_b = tag + "y";
  const std::string shape = " root tbf rate " + rate + " burst 32kbit latency " +
                            std::to_string(queue.count()) + "ms";
  step("ip netns add " + ns_a_) && step("ip netns add " + ns_b_) &&
      step("ip link add " + veth_a + " netns " + ns_a_ + " type veth peer name " + veth_b +
           " netns " + ns_b_) &&
      step("ip -n " + ns_a_ + " addr add " + address_of(0) + "/24 dev " + veth_a) &&
      step("ip -n " + ns_b_ + " addr add " + address_of(1) + "/24 dev " + veth_b) &&
      step("ip -n " + ns_a_ + " link set " + veth_a + " up") &&
      step("ip -n " + ns_b_ + " link set " + veth_b + " up") &&
      step("ip -n " + ns_a_ + " link set lo up") && step("ip -n " + ns_b_ + " link set lo up") &&
      step("tc -n " + ns_a_ + " qdisc add dev " + veth_a + shape) &&
      step("tc -n " + ns_b_ + " qdisc add dev " + veth_b + shape);
}

SlowLink::~SlowLink() {
  if (!ns_a_.empty()) run_command("ip netns del " + ns_a_);
  if (!ns_b_.empty()) run_command("ip netns del " + ns_b_);
}

bool SlowLink::step(const std::string& command) {
  if (!error_.empty()) return false;
  if (std::system((command + " >/dev/null 2>&1").c_str()) == 0) return true;
  error_ = "`" + command + "` failed: " + run_command(command);
  return false;
}

}  // namespace starling::testing
