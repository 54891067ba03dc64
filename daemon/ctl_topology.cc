#include "daemon/ctl_topology.h"

#include <cstdio>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "daemon/json_text.h"
#include "topology/analysis.h"
#include "topology/cluster_file.h"
#include "topology/config_error.h"
#include "topology/topology.h"

namespace starling::daemon {
namespace {

using topology::kNever;

std::string fixed(double value, int digits) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(digits) << value;
  return os.str();
}

nlohmann::json to_json(const topology::ClusterSpec& spec, const topology::Topology& topo,
                       const topology::TopologyAnalysis& a) {
  nlohmann::json nodes = nlohmann::json::array();
  for (std::size_t i = 0; i < topo.size(); ++i) {
    nlohmann::json neighbours = nlohmann::json::array();
    for (std::size_t j : topo.graph().neighbours(i)) neighbours.push_back(topo.names()[j]);
    nlohmann::json rounds = nlohmann::json::array();
    for (std::size_t r = 0; r < topo.period(); ++r) {
      auto round = topo.round_for(i, r);
      nlohmann::json weights = {{topo.names()[i], round.self_weight}};
      for (auto [peer, weight] : round.receive_from) weights[topo.names()[peer]] = weight;
      rounds.push_back(weights);
    }
    nodes.push_back({{"id", spec.nodes[i].id},
                     {"endpoint", spec.nodes[i].endpoint},
                     {"control", spec.nodes[i].control},
                     {"neighbours", neighbours},
                     {"weights", topo.time_varying() ? rounds : rounds[0]}});
  }
  auto rounds_json = a.rounds_to_tenfold == kNever ? nlohmann::json(nullptr)
                                                   : nlohmann::json(a.rounds_to_tenfold);
  return {{"cluster", spec.name},
          {"file", spec.file},
          {"kind", to_string(topo.kind())},
          {"weights", to_string(topo.weights())},
          {"time_varying", topo.time_varying()},
          {"period", topo.period()},
          {"doubly_stochastic", topo.doubly_stochastic()},
          {"symmetric", topo.symmetric()},
          {"nodes", nodes},
          {"analysis",
           {{"nodes", a.nodes},
            {"min_degree", a.min_degree},
            {"max_degree", a.max_degree},
            {"mean_degree", a.mean_degree},
            {"diameter", a.diameter},
            {"slem", a.slem},
            {"spectral_gap", a.spectral_gap},
            {"period_slem", a.period_slem},
            {"rounds_to_tenfold", rounds_json}}}};
}

void print_table(const topology::ClusterSpec& spec, const topology::Topology& topo,
                 const topology::TopologyAnalysis& a, std::ostream& out) {
  out << "cluster " << spec.name << ": " << topo.size() << " nodes, " << to_string(topo.kind())
      << ", " << (topo.time_varying() ? "time-varying 1/2-1/2" : to_string(topo.weights()))
      << " weights" << (topo.doubly_stochastic() ? " (doubly stochastic)" : " (row stochastic)")
      << "\n\n";
  std::size_t id_width = 4, endpoint_width = 8;
  for (const auto& n : spec.nodes) {
    id_width = std::max(id_width, n.id.size());
    endpoint_width = std::max(endpoint_width, n.endpoint.size());
  }
  out << std::left << std::setw(static_cast<int>(id_width) + 2) << "node"
      << std::setw(static_cast<int>(endpoint_width) + 2) << "endpoint" << "neighbours / weights\n";
  for (std::size_t i = 0; i < topo.size(); ++i) {
    out << std::left << std::setw(static_cast<int>(id_width) + 2) << spec.nodes[i].id
        << std::setw(static_cast<int>(endpoint_width) + 2) << spec.nodes[i].endpoint;
    if (topo.time_varying()) {
      for (std::size_t r = 0; r < topo.period(); ++r) {
        auto round = topo.round_for(i, r);
        out << (r ? "   " : "") << "t mod " << topo.period() << " = " << r << ":";
        for (auto [peer, weight] : round.receive_from) {
          out << " " << topo.names()[peer] << " " << fixed(weight, 3);
        }
      }
      out << "   (self 0.500)";
    } else {
      auto round = topo.round_for(i, 0);
      out << "self " << fixed(round.self_weight, 3);
      for (auto [peer, weight] : round.receive_from) {
        out << "  " << topo.names()[peer] << " " << fixed(weight, 3);
      }
    }
    out << "\n";
  }
  out << "\nanalysis\n"
      << "  degree                 min " << a.min_degree << ", max " << a.max_degree << ", mean "
      << fixed(a.mean_degree, 2) << "\n"
      << "  diameter               " << a.diameter << " hops\n";
  if (a.time_varying) {
    out << "  period                 " << a.period << " rounds\n"
        << "  SLEM of one period     " << fixed(a.period_slem, 6) << "\n"
        << "  SLEM per round         " << fixed(a.slem, 6) << " (geometric mean over a period)\n";
  } else {
    out << "  SLEM                   " << fixed(a.slem, 6) << "\n";
  }
  out << "  spectral gap           " << fixed(a.spectral_gap, 6) << "\n"
      << "  rounds to shrink disagreement 10x: "
      << (a.rounds_to_tenfold == kNever ? std::string("never")
                                        : std::to_string(a.rounds_to_tenfold))
      << "\n";
}

}  // namespace

int run_topology_command(const std::string& path, bool json, std::ostream& out, std::ostream& err) {
  try {
    auto spec = topology::parse_cluster_file(path);
    auto topo = topology::Topology::compile(spec);
    auto analysis = topo.analyse();
    if (json) {
      out << json_text(to_json(spec, topo, analysis), 2) << "\n";
    } else {
      print_table(spec, topo, analysis, out);
    }
    return 0;
  } catch (const topology::ConfigError& e) {
    err << "starlingctl: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace starling::daemon
