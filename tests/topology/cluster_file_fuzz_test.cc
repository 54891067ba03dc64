// Bad input never crashes the parser: every shipped cluster file, mutated at random (bytes
// flipped, lines dropped or repeated, values swapped for extreme or ill-typed ones), is either
// refused with a ConfigError that names the file, or parsed into a spec that compiles into a
// topology and a protocol fingerprint. Any other exception (std::out_of_range from a number
// conversion, a bad_alloc from a size taken on trust, toml++'s own parse_error) is a bug:
// starlingd would then die with an unhelpful message instead of exit code 2.
#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "topology/cluster_file.h"
#include "topology/config_error.h"
#include "topology/protocol_fingerprint.h"
#include "topology/topology.h"

namespace starling::topology {
namespace {

std::string read_config(const std::string& name) {
  std::ifstream in(std::string(STARLING_SOURCE_DIR) + "/configs/" + name + ".toml");
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) out += line + "\n";
  return out;
}

// Values that have broken parsers before: out of every range, of the wrong type, empty.
const std::vector<std::string> kHostileValues = {
    "0", "-1", "1", "2", "-9223372036854775808", "9223372036854775807", "18446744073709551616",
    "1e308", "-1e308", "nan", "inf", "-inf", "0.0", "1e-320", "\"\"", "\"x\"", "true", "[]",
    "[[]]", "{}", "[1, 2]", "\"tcp://\"", "\"tcp://127.0.0.1:99999\"", "\"ipc://\"",
    "\"cuda:99999999999\"", "\"dirichlet:0\"", "\"dirichlet:-1\"", "\"dirichlet:nan\"",
    "\"shard:abc\"", "1979-05-27T07:32:00Z", "\"\\u0000\""};

// One random change of the kinds above.
std::string mutate(const std::string& text, std::mt19937& rng) {
  auto pick = [&rng](std::size_t n) {
    return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  std::vector<std::string> lines = lines_of(text);
  if (lines.empty()) return text;
  switch (pick(5)) {
    case 0: {  // a value replaced by a hostile one
      std::string& line = lines[pick(lines.size())];
      const auto eq = line.find('=');
      if (eq != std::string::npos) line = line.substr(0, eq + 1) + " " + kHostileValues[pick(kHostileValues.size())];
      return joined(lines);
    }
    case 1:  // a line dropped
      lines.erase(lines.begin() + static_cast<std::ptrdiff_t>(pick(lines.size())));
      return joined(lines);
    case 2: {  // a line repeated somewhere else
      const std::string line = lines[pick(lines.size())];
      lines.insert(lines.begin() + static_cast<std::ptrdiff_t>(pick(lines.size() + 1)), line);
      return joined(lines);
    }
    case 3: {  // a byte changed
      std::string out = text;
      out[pick(out.size())] = static_cast<char>(pick(256));
      return out;
    }
    default:  // cut short
      return text.substr(0, pick(text.size()));
  }
}

TEST(ClusterFileFuzz, MutatedShippedFilesAreRefusedWithAConfigErrorOrCompile) {
  std::mt19937 rng(20261126);
  int refused = 0, accepted = 0;
  for (const char* name : {"ring4", "torus2x4", "hypercube8", "exponential16", "one-peer-exp8",
                           "edges5", "allreduce4", "dynamic8"}) {
    const std::string original = read_config(name);
    ASSERT_FALSE(original.empty()) << name;
    for (int i = 0; i < 400; ++i) {
      std::string text = original;
      // One to three changes on top of each other.
      for (std::size_t k = 1 + std::uniform_int_distribution<std::size_t>(0, 2)(rng); k > 0; --k) {
        text = mutate(text, rng);
      }
      try {
        ClusterSpec spec = parse_cluster_text(text, "fuzz.toml");
        Topology topo = Topology::compile(spec);
        EXPECT_EQ(topo.size(), spec.nodes.size());
        (void)protocol_fingerprint(spec, 0);
        ++accepted;
      } catch (const ConfigError& e) {
        EXPECT_NE(std::string(e.what()).find("fuzz.toml"), std::string::npos)
            << "the error does not name the file: " << e.what() << "\n--- input ---\n" << text;
        ++refused;
      } catch (const std::exception& e) {
        ADD_FAILURE() << name << ", mutation " << i << ": " << typeid(e).name() << ": "
                      << e.what() << "\n--- input ---\n" << text;
      }
    }
  }
  // Both outcomes occur, so the mutations reach past the first checks and into valid files.
  EXPECT_GT(refused, 100);
  EXPECT_GT(accepted, 100);
}

}  // namespace
}  // namespace starling::topology
