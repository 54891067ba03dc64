#include "daemon/ctl_status.h"

#include <algorithm>
#include <iomanip>
#include <ostream>

#include "daemon/control_client.h"
#include "daemon/ctl_common.h"
#include "daemon/json_text.h"
#include "daemon/curve_keys.h"
#include "daemon/runtime_paths.h"
#include "topology/config_error.h"

namespace starling::daemon {

std::vector<NodeAnswer> ask_cluster(const topology::ClusterSpec& spec, const std::string& command,
                                    const std::vector<std::string>& nodes,
                                    std::chrono::milliseconds timeout,
                                    const std::string& key_file) {
  std::vector<std::size_t> indices;
  if (nodes.empty()) {
    for (std::size_t i = 0; i < spec.nodes.size(); ++i) indices.push_back(i);
  } else {
    for (const auto& id : nodes) {
      std::size_t i = spec.index_of(id);
      if (i == spec.nodes.size()) {
        std::string ids;
        for (const auto& n : spec.nodes) ids += (ids.empty() ? "" : ", ") + n.id;
        throw topology::ConfigError(spec.file, 0, 0, "",
                                    "no node \"" + id + "\" in this cluster; nodes are " + ids);
      }
      indices.push_back(i);
    }
  }
  // Encrypted control sockets need a key pair; the others are asked in any case.
  ControlClientCurve curve;
  std::string key_problem;
  std::vector<std::size_t> asked;  // positions in `indices` that are asked
  std::vector<std::string> endpoints;
  std::vector<bool> encrypted;
  for (std::size_t i : indices) encrypted.push_back(control_uses_curve(spec, i));
  if (std::find(encrypted.begin(), encrypted.end(), true) != encrypted.end()) {
    try {
      KeyPair pair = control_client_key(spec, key_file);
      curve.public_key = pair.public_key;
      curve.secret_key = pair.secret_key;
    } catch (const KeyError& e) {
      key_problem = e.what();
    }
  }
  for (std::size_t k = 0; k < indices.size(); ++k) {
    if (encrypted[k] && !key_problem.empty()) continue;
    asked.push_back(k);
    endpoints.push_back(control_endpoint(spec, indices[k]));
    curve.server_keys.push_back(encrypted[k] ? spec.nodes[indices[k]].public_key : "");
  }
  auto results = query_nodes(endpoints, {{"cmd", command}}, timeout, &curve);
  std::vector<NodeAnswer> answers(indices.size());
  for (std::size_t k = 0; k < indices.size(); ++k) {
    answers[k].node = spec.nodes[indices[k]].id;
    answers[k].error = "unreachable: " + key_problem;  // unless asked, below
  }
  for (std::size_t a = 0; a < asked.size(); ++a) {
    NodeAnswer& answer = answers[asked[a]];
    answer.answered = results[a].answered;
    answer.reply = results[a].reply;
    answer.error = results[a].error;
  }
  return answers;
}

namespace {

std::string cell(const nlohmann::json& reply, const char* key, int digits) {
  auto it = reply.find(key);
  if (it == reply.end() || !it->is_number()) return "-";
  return fixed_digits(it->get<double>(), digits);
}

}  // namespace

// One short, mode-specific summary of a node's "sync" status.
std::string sync_summary(const nlohmann::json& reply) {
  if (!reply.contains("sync") || !reply["sync"].is_object()) return "";
  const auto& sync = reply["sync"];
  const std::string mode = reply.value("mode", "");
  auto num = [&sync](const char* key, int digits) {
    return sync.contains(key) && sync[key].is_number() ? fixed_digits(sync[key].get<double>(), digits)
                                                       : std::string("-");
  };
  if (mode == "gossip") {
    std::string text = "round " + num("round", 0);
    // With overlapped rounds, how stale their mixes were: accuracy falls with it.
    if (sync.value("staleness", 0) > 0 && sync.value("rounds", 0) > 0) {
      text += ", applied " + num("mean_apply_lag_steps", 1) + " steps late";
      // The mean hides the tail that costs the accuracy: rounds a whole period late.
      const double rounds = sync.value("rounds", 0.0);
      if (sync.contains("rounds_a_period_late") && sync["rounds_a_period_late"].is_number()) {
        text += " (" +
                fixed_digits(100.0 * sync["rounds_a_period_late"].get<double>() / rounds, 0) +
                "% a period late)";
      }
    }
    if (sync.value("allreduces", 0) > 0) text += ", allreduces " + num("allreduces", 0);
    return text;
  }
  if (mode == "allreduce") {
    return sync.value("state", "") + ", ring " + num("ring", 0) + ", fallbacks " + num("fallbacks", 0);
  }
  if (mode == "dynamic") {
    return "drift " + num("drift", 3) + " / delta " + num("delta", 3) + ", violations " +
           num("violations", 0) + ", syncs " + num("local_balancings", 0) + " local " +
           num("full_syncs", 0) + " full";
  }
  return "";
}

void print_status_table(const std::vector<NodeAnswer>& answers, std::ostream& out) {
  const std::vector<std::pair<std::string, int>> columns = {
      {"node", 8},  {"state", 24}, {"step", 8},      {"epoch", 7},  {"loss", 8},  {"acc", 8},
      {"samples/s", 10}, {"mode", 10}, {"peers", 7}, {"sent", 10}, {"consensus", 11}, {"sync", 0}};
  std::size_t node_width = 4;
  for (const auto& a : answers) node_width = std::max(node_width, a.node.size());
  out << std::left;
  for (std::size_t c = 0; c < columns.size(); ++c) {
    int width = c == 0 ? static_cast<int>(node_width) + 2 : columns[c].second;
    out << std::setw(width) << columns[c].first;
    if (c + 1 == columns.size()) break;
  }
  out << "\n";
  for (const auto& a : answers) {
    out << std::setw(static_cast<int>(node_width) + 2) << a.node;
    if (!a.answered || !a.reply.value("ok", false)) {
      out << (a.answered ? a.reply.value("error", std::string("error")) : a.error) << "\n";
      continue;
    }
    const auto& r = a.reply;
    std::string accuracy = "-";
    if (r.contains("accuracy") && r["accuracy"].is_number()) {
      accuracy = fixed_digits(100.0 * r["accuracy"].get<double>(), 2) + "%";
    }
    auto count = [&r](const char* key) {
      return r.contains(key) && r[key].is_number() ? std::to_string(r[key].get<std::int64_t>())
                                                   : std::string("?");
    };
    std::string peers = count("peers_alive") + "/" + count("peers_total");
    std::string state = r.value("state", std::string("?"));
    out << std::setw(24) << state.substr(0, 23) << std::setw(8)
        << count("step") << std::setw(7) << cell(r, "epoch", 2)
        << std::setw(8) << cell(r, "loss", 4) << std::setw(8) << accuracy << std::setw(10)
        << cell(r, "samples_per_s", 0) << std::setw(10) << r.value("mode", std::string("?"))
        << std::setw(7) << peers << std::setw(10)
        << (r.contains("bytes_sent") && r["bytes_sent"].is_number()
                ? human_bytes(r["bytes_sent"].get<double>())
                : std::string("-"))
        << std::setw(11)
        << cell(r, "consensus_distance", 4) << sync_summary(r) << "\n";
  }
}

int run_control_command(const std::string& command, const std::string& cluster_path,
                        const std::vector<std::string>& nodes, bool json,
                        std::chrono::milliseconds timeout, std::ostream& out, std::ostream& err,
                        const std::string& key_file) {
  std::vector<NodeAnswer> answers;
  try {
    auto spec = load_cluster_for_ctl(cluster_path);
    if (!key_file.empty()) (void)control_client_key(spec, key_file);  // a bad --key: exit 2
    answers = ask_cluster(spec, command, nodes, timeout, key_file);
  } catch (const topology::ConfigError& e) {
    err << "starlingctl: " << e.what() << "\n";
    return 2;
  } catch (const KeyError& e) {
    err << "starlingctl: --key " << e.what() << "\n";
    return 2;
  }
  bool all_ok = true;
  for (const auto& a : answers) all_ok = all_ok && a.answered && a.reply.value("ok", false);
  if (json) {
    nlohmann::json doc = nlohmann::json::array();
    for (const auto& a : answers) {
      doc.push_back({{"node", a.node},
                     {"answered", a.answered},
                     {"reply", a.answered ? a.reply : nlohmann::json(nullptr)},
                     {"error", a.answered ? nlohmann::json(nullptr) : nlohmann::json(a.error)}});
    }
    out << json_text(doc, 2) << "\n";
    return all_ok ? 0 : 1;
  }
  if (command == "status") {
    print_status_table(answers, out);
  } else if (command == "peers") {
    for (const auto& a : answers) {
      out << a.node << ":\n";
      if (!a.answered) {
        out << "  " << a.error << "\n";
        continue;
      }
      out << "  " << std::left << std::setw(8) << "peer" << std::setw(12) << "state"
          << std::setw(10) << "rtt ms" << std::setw(12) << "sent" << std::setw(12) << "received"
          << std::setw(8) << "round" << "rejected\n";
      for (const auto& p : a.reply.value("peers", nlohmann::json::array())) {
        std::string state = p.value("state", std::string("?"));
        if (p.value("back", false)) state += " (back)";
        std::string rtt = p["rtt_ms"].is_number() ? fixed_digits(p["rtt_ms"].get<double>(), 2) : "-";
        std::string rejected;
        for (auto it = p["rejected"].begin(); it != p["rejected"].end(); ++it) {
          rejected += (rejected.empty() ? "" : ", ") + it.key() + ": " + std::to_string(it->get<std::uint64_t>());
        }
        out << "  " << std::setw(8) << p.value("id", std::string("?")) << std::setw(12) << state
            << std::setw(10) << rtt << std::setw(12) << human_bytes(p.value("bytes_sent", 0.0))
            << std::setw(12) << human_bytes(p.value("bytes_received", 0.0)) << std::setw(8)
            << p.value("round", 0) << (rejected.empty() ? "-" : rejected) << "\n";
      }
      auto handshake = a.reply.value("handshake_failures", 0);
      if (handshake) out << "  failed handshakes on the data port: " << handshake << "\n";
      for (auto it = a.reply["rejected_from_unknown"].begin();
           it != a.reply["rejected_from_unknown"].end(); ++it) {
        out << "  rejected from unknown connections: " << it.key() << ": " << it->dump() << "\n";
      }
    }
  } else {
    for (const auto& a : answers) {
      out << a.node << ": ";
      if (!a.answered) {
        out << a.error << "\n";
      } else if (!a.reply.value("ok", false)) {
        out << "error: " << a.reply.value("error", std::string("?")) << "\n";
      } else {
        nlohmann::json shown = a.reply;
        shown.erase("ok");
        out << "ok " << json_text(shown) << "\n";
      }
    }
  }
  return all_ok ? 0 : 1;
}

int run_sync_command(const std::string& cluster_path, const std::vector<std::string>& nodes,
                     std::chrono::milliseconds timeout, std::ostream& out, std::ostream& err,
                     const std::string& key_file) {
  topology::ClusterSpec spec;
  try {
    spec = load_cluster_for_ctl(cluster_path);
    if (!key_file.empty()) (void)control_client_key(spec, key_file);  // a bad --key: exit 2
  } catch (const topology::ConfigError& e) {
    err << "starlingctl: " << e.what() << "\n";
    return 2;
  } catch (const KeyError& e) {
    err << "starlingctl: --key " << e.what() << "\n";
    return 2;
  }
  std::vector<std::string> order = nodes;
  if (order.empty()) {
    for (const auto& n : spec.nodes) order.push_back(n.id);
  }
  // One request is enough (the node tells the others); ask node by node until one takes it.
  for (const auto& id : order) {
    std::vector<NodeAnswer> answers;
    try {
      answers = ask_cluster(spec, "sync", {id}, timeout, key_file);
    } catch (const topology::ConfigError& e) {
      err << "starlingctl: " << e.what() << "\n";
      return 2;
    }
    const auto& a = answers.front();
    if (!a.answered) {
      err << id << ": " << a.error << "\n";
      continue;
    }
    if (!a.reply.value("ok", false)) {
      err << id << ": " << a.reply.value("error", std::string("refused")) << "\n";
      return 1;
    }
    out << "allreduce of all live nodes scheduled at round " << a.reply.value("round", 0)
        << " (requested through " << id << ")\n";
    return 0;
  }
  err << "starlingctl: no node took the request\n";
  return 1;
}

}  // namespace starling::daemon
