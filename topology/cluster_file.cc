#include "topology/cluster_file.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <arpa/inet.h>
#include <sys/un.h>
#include <toml++/toml.h>

#include "topology/config_error.h"

namespace starling::topology {

const std::vector<std::string>& implemented_sync_modes() {
  static const std::vector<std::string> modes = {"local", "gossip", "allreduce", "dynamic"};
  return modes;
}

std::optional<std::string> tcp_endpoint_host(const std::string& endpoint) {
  if (endpoint.rfind("tcp://", 0) != 0) return std::nullopt;
  const auto colon = endpoint.rfind(':');  // the port's; "tcp:" has one at 3
  if (colon <= 6) return std::nullopt;
  return endpoint.substr(6, colon - 6);
}

std::string without_brackets(const std::string& host) {
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') return host.substr(1, host.size() - 2);
  return host;
}

std::optional<std::string> ipc_endpoint_path(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) != 0) return std::nullopt;
  return endpoint.substr(6);
}

std::string ring_link_socket_path(const std::string& ipc_path) { return ipc_path + ".link"; }

namespace {
bool unix_links_fit(const NodeSpec& n) {
  const auto path = ipc_endpoint_path(n.endpoint);
  return path && !ipc_path_problem(ring_link_socket_path(*path));
}
}  // namespace

CollectiveLinks collective_links(const ClusterSpec& spec) {
  const auto& s = spec.sync;
  if (s.mode == "local" || s.collective_transport == "zeromq") return CollectiveLinks::zeromq;
  if (s.collective_transport == "tcp") return CollectiveLinks::tcp;
  if (s.collective_transport == "unix") return CollectiveLinks::unix_socket;
  // "auto": links where every node can have one and nothing is encrypted (links are not).
  const auto& nodes = spec.nodes;
  const bool plain = std::all_of(nodes.begin(), nodes.end(),
                                 [](const NodeSpec& n) { return n.public_key.empty(); });
  if (!plain || nodes.empty()) return CollectiveLinks::zeromq;
  if (std::all_of(nodes.begin(), nodes.end(),
                  [](const NodeSpec& n) { return tcp_endpoint_host(n.endpoint).has_value(); })) {
    return CollectiveLinks::tcp;
  }
  if (std::all_of(nodes.begin(), nodes.end(), unix_links_fit)) return CollectiveLinks::unix_socket;
  return CollectiveLinks::zeromq;
}

bool collectives_use_tcp_links(const ClusterSpec& spec) {
  return collective_links(spec) == CollectiveLinks::tcp;
}

namespace {

int line_of(const toml::node& node) { return static_cast<int>(node.source().begin.line); }
int column_of(const toml::node& node) { return static_cast<int>(node.source().begin.column); }

std::string join(const std::vector<std::string>& items, const std::string& sep = ", ") {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) out += (i ? sep : "") + items[i];
  return out;
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::vector<std::string> q;
  for (const auto& s : items) q.push_back("\"" + s + "\"");
  return join(q, " | ");
}

// Levenshtein distance, for "did you mean" hints on misspelt keys.
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::array: return "an array";
    case toml::node_type::table: return "a table";
    default: return "a date/time";
  }
}

// Reads the keys of one table. Every accessor records its key as known; reject_unknown_keys()
// then fails on anything left over. Invariant: a value is only read through these accessors, so
// "known" is exactly the set of keys the schema has for this table.
class TableReader {
 public:
  TableReader(const std::string& file, const toml::table& table, std::string prefix, int line)
      : file_(file), table_(table), prefix_(std::move(prefix)), line_(line) {}

  int line() const { return line_; }
  const std::string& file() const { return file_; }
  std::string field(std::string_view key) const {
    return prefix_.empty() ? std::string(key) : prefix_ + "." + std::string(key);
  }

  [[noreturn]] void fail_at(const toml::node* node, std::string_view key,
                            const std::string& message) const {
    throw ConfigError(file_, node ? line_of(*node) : line_, node ? column_of(*node) : 0,
                      field(key), message);
  }

  const toml::node* get(std::string_view key) {
    known_.insert(std::string(key));
    return table_.get(key);
  }

  bool has(std::string_view key) const { return table_.get(key) != nullptr; }

  std::optional<std::string> optional_string(std::string_view key) {
    const toml::node* node = get(key);
    if (!node) return std::nullopt;
    if (!node->is_string()) fail_at(node, key, "must be a string, not " + type_name(*node));
    return node->as_string()->get();
  }

  std::string string(std::string_view key, std::string fallback) {
    return optional_string(key).value_or(std::move(fallback));
  }

  std::string required_string(std::string_view key, const std::string& what_is_valid) {
    auto value = optional_string(key);
    if (!value) fail_at(nullptr, key, "is required (" + what_is_valid + ")");
    if (value->empty()) fail_at(get(key), key, "must not be empty (" + what_is_valid + ")");
    return *value;
  }

  std::string choice(std::string_view key, std::string fallback,
                     const std::vector<std::string>& allowed) {
    const toml::node* node = get(key);
    std::string value = string(key, std::move(fallback));
    if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
      fail_at(node, key, "\"" + value + "\" is not valid; use " + quoted_list(allowed));
    }
    return value;
  }

  std::int64_t integer(std::string_view key, std::int64_t fallback, std::int64_t min,
                       std::int64_t max) {
    const toml::node* node = get(key);
    if (!node) return fallback;
    if (!node->is_integer()) fail_at(node, key, "must be an integer, not " + type_name(*node));
    std::int64_t value = node->as_integer()->get();
    if (value < min || value > max) {
      fail_at(node, key, std::to_string(value) + " is out of range; valid: " + std::to_string(min) +
                             " to " + std::to_string(max));
    }
    return value;
  }

  double number(std::string_view key, double fallback, double min, double max) {
    const toml::node* node = get(key);
    if (!node) return fallback;
    double value = 0;
    if (node->is_integer()) {
      value = static_cast<double>(node->as_integer()->get());
    } else if (node->is_floating_point()) {
      value = node->as_floating_point()->get();
    } else {
      fail_at(node, key, "must be a number, not " + type_name(*node));
    }
    if (!(value >= min && value <= max)) {
      std::ostringstream os;
      os << value << " is out of range; valid: " << min << " to " << max;
      fail_at(node, key, os.str());
    }
    return value;
  }

  bool boolean(std::string_view key, bool fallback) {
    const toml::node* node = get(key);
    if (!node) return fallback;
    if (!node->is_boolean()) fail_at(node, key, "must be true or false, not " + type_name(*node));
    return node->as_boolean()->get();
  }

  const toml::array* array(std::string_view key) {
    const toml::node* node = get(key);
    if (!node) return nullptr;
    if (!node->is_array()) fail_at(node, key, "must be an array, not " + type_name(*node));
    return node->as_array();
  }

  void reject_unknown_keys() const {
    for (auto&& [key, value] : table_) {
      std::string name(key.str());
      if (known_.count(name)) continue;
      std::string message = "unknown key";
      std::string best;
      std::size_t best_distance = 3;  // only suggest close matches
      for (const auto& candidate : known_) {
        std::size_t d = edit_distance(name, candidate);
        if (d < best_distance) best_distance = d, best = candidate;
      }
      if (!best.empty()) message += "; did you mean \"" + best + "\"?";
      std::vector<std::string> valid(known_.begin(), known_.end());
      message += " (valid keys here: " + join(valid) + ")";
      throw ConfigError(file_, line_of(value), column_of(value), field(name), message);
    }
  }

 private:
  const std::string& file_;
  const toml::table& table_;
  std::string prefix_;
  int line_;
  std::set<std::string> known_;
};

const toml::table* sub_table(TableReader& parent, std::string_view key) {
  const toml::node* node = parent.get(key);
  if (!node) return nullptr;
  if (!node->is_table()) {
    parent.fail_at(node, key, "must be a table ([" + std::string(key) + "]), not " + type_name(*node));
  }
  return node->as_table();
}

bool is_z85_key(const std::string& key) {
  static constexpr std::string_view kZ85 =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  return key.size() == 40 &&
         std::all_of(key.begin(), key.end(), [](char c) { return kZ85.find(c) != std::string_view::npos; });
}

bool valid_id(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

// Checks a training device name: auto, cpu, cuda or cuda:N. (Whether that device exists is
// for the node that uses it to find out.)
std::optional<std::string> device_problem(const std::string& device) {
  bool ok = device == "auto" || device == "cpu" || device == "cuda";
  if (!ok && device.rfind("cuda:", 0) == 0 && device.size() > 5 && device.size() <= 9) {
    ok = std::all_of(device.begin() + 5, device.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
  }
  if (ok) return std::nullopt;
  return "\"" + device + "\" is not valid; use \"auto\", \"cpu\", \"cuda\" or \"cuda:N\"";
}

}  // namespace

std::optional<std::string> ipc_path_problem(const std::string& path) {
  if (path.empty()) return "ipc:// needs a path";
  constexpr std::size_t kLongest = sizeof(sockaddr_un::sun_path) - 1;  // 107 on Linux
  if (path.size() > kLongest) {
    return "the path is " + std::to_string(path.size()) + " bytes; a Unix socket's path holds at "
           "most " + std::to_string(kLongest);
  }
  return std::nullopt;
}

namespace {

// The metrics server listens on an address, not a name: IPv4, bracketed IPv6, or localhost.
bool metrics_host_is_an_address(const std::string& host) {
  if (host == "localhost") return true;
  unsigned char buffer[sizeof(in6_addr)];
  if (!host.empty() && host.front() == '[') return ::inet_pton(AF_INET6, without_brackets(host).c_str(), buffer) == 1;
  return ::inet_pton(AF_INET, host.c_str(), buffer) == 1;
}

// Checks a ZeroMQ endpoint we bind or connect to: tcp://host:port or ipc://path.
std::optional<std::string> endpoint_problem(const std::string& endpoint) {
  if (auto path = ipc_endpoint_path(endpoint)) return ipc_path_problem(*path);
  if (endpoint.rfind("tcp://", 0) == 0) {
    const auto found = tcp_endpoint_host(endpoint);
    if (!found) return "tcp:// needs host:port";
    const std::string& host = *found;
    std::string port = endpoint.substr(endpoint.rfind(':') + 1);
    // Peers connect to this endpoint, so it must name an address, not a wildcard or an
    // interface pattern: a host name, an IPv4 address or a bracketed IPv6 one.
    if (host == "*") return "\"*\" is not an address peers can connect to; use this node's address";
    const bool bracketed = host.size() > 2 && host.front() == '[' && host.back() == ']';
    for (char ch : bracketed ? host.substr(1, host.size() - 2) : host) {
      const bool ok = std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-' ||
                      (bracketed && ch == ':');
      if (!ok) return "host \"" + host + "\" is not a host name or address";
    }
    int value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || ptr != port.data() + port.size() || value < 1 || value > 65535) {
      return "port \"" + port + "\" must be a number from 1 to 65535";
    }
    return std::nullopt;
  }
  return "must start with tcp:// or ipc://";
}

// What two endpoints must not share, for the duplicate check: the same socket under another
// spelling is the same socket. Host names are case-insensitive, and "localhost" is 127.0.0.1
// (ZeroMQ binds and connects it as IPv4 unless told otherwise); a path in ipc:// is taken
// lexically ("./a/../s" is "s"). Other names are not resolved: a name may mean another
// machine on another host, and resolving is for the node that binds.
std::string socket_key(const std::string& endpoint) {
  if (auto path = ipc_endpoint_path(endpoint)) {
    return "ipc://" + std::filesystem::path(*path).lexically_normal().string();
  }
  const auto host = tcp_endpoint_host(endpoint);
  if (!host) return endpoint;
  std::string lower = *host;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (lower == "localhost") lower = "127.0.0.1";
  return "tcp://" + lower + endpoint.substr(endpoint.rfind(':'));
}

void parse_cluster_section(TableReader& root, ClusterSpec& spec) {
  const toml::table* table = sub_table(root, "cluster");
  if (!table) root.fail_at(nullptr, "cluster", "the [cluster] table is required (name, seed)");
  TableReader reader(spec.file, *table, "cluster", line_of(*table));
  spec.name = reader.required_string("name", "a cluster name such as \"fmnist-ring4\"");
  if (!valid_id(spec.name)) {
    reader.fail_at(reader.get("name"), "name",
                   "\"" + spec.name + "\" must be 1-64 characters of letters, digits, '-', '_', '.'");
  }
  spec.seed = static_cast<std::uint64_t>(
      reader.integer("seed", 1, 0, std::numeric_limits<std::int64_t>::max()));
  reader.reject_unknown_keys();
}

void parse_nodes(TableReader& root, ClusterSpec& spec) {
  const toml::node* node = root.get("node");
  if (!node || !node->is_array_of_tables() || node->as_array()->empty()) {
    root.fail_at(node, "node", "at least one [[node]] table is required (id, endpoint)");
  }
  std::map<std::string, int> id_lines, endpoint_lines, control_lines, metrics_lines, key_lines;
  std::size_t index = 0;
  for (const toml::node& element : *node->as_array()) {
    const toml::table& table = *element.as_table();
    TableReader reader(spec.file, table, "node[" + std::to_string(index) + "]", line_of(table));
    NodeSpec n;
    n.line = line_of(table);
    n.id = reader.required_string("id", "a unique node id such as \"n0\"");
    if (!valid_id(n.id)) {
      reader.fail_at(reader.get("id"), "id",
                     "\"" + n.id + "\" must be 1-64 characters of letters, digits, '-', '_', '.'");
    }
    if (auto [it, inserted] = id_lines.emplace(n.id, n.line); !inserted) {
      reader.fail_at(reader.get("id"), "id",
                     "duplicate node id \"" + n.id + "\" (first defined at line " +
                         std::to_string(it->second) + "); node ids must be unique");
    }
    n.endpoint = reader.required_string("endpoint", "e.g. \"tcp://127.0.0.1:7100\"");
    if (auto problem = endpoint_problem(n.endpoint)) {
      reader.fail_at(reader.get("endpoint"), "endpoint", "\"" + n.endpoint + "\": " + *problem);
    }
    if (auto [it, inserted] = endpoint_lines.emplace(socket_key(n.endpoint), n.line); !inserted) {
      reader.fail_at(reader.get("endpoint"), "endpoint",
                     "duplicate endpoint \"" + n.endpoint + "\" (the same socket as at line " +
                         std::to_string(it->second) + "); every node needs its own");
    } else if (auto metrics = metrics_lines.find(it->first); metrics != metrics_lines.end()) {
      reader.fail_at(reader.get("endpoint"), "endpoint",
                     "\"" + n.endpoint + "\" is the metrics address of the node at line " +
                         std::to_string(metrics->second) + "; every listener needs its own port");
    } else if (auto control = control_lines.find(it->first); control != control_lines.end()) {
      reader.fail_at(reader.get("endpoint"), "endpoint",
                     "\"" + n.endpoint + "\" is the control endpoint of the node at line " +
                         std::to_string(control->second) + "; every socket needs its own");
    }
    n.control = reader.string("control", "");
    if (!n.control.empty()) {
      if (auto problem = endpoint_problem(n.control)) {
        reader.fail_at(reader.get("control"), "control", "\"" + n.control + "\": " + *problem);
      }
      const std::string key = socket_key(n.control);
      if (endpoint_lines.count(key) || metrics_lines.count(key) ||
          !control_lines.emplace(key, n.line).second) {
        reader.fail_at(reader.get("control"), "control",
                       "duplicate endpoint \"" + n.control + "\"; every socket needs its own");
      }
    }
    n.public_key = reader.string("public_key", "");
    if (reader.has("public_key") && !is_z85_key(n.public_key)) {
      reader.fail_at(reader.get("public_key"), "public_key",
                     "\"" + n.public_key + "\" is not a CURVE public key: 40 characters of Z85 "
                     "(`starlingctl keygen FILE` makes a key pair)");
    }
    if (!n.public_key.empty()) {
      if (auto [it, inserted] = key_lines.emplace(n.public_key, n.line); !inserted) {
        reader.fail_at(reader.get("public_key"), "public_key",
                       "the same key as the node at line " + std::to_string(it->second) +
                           "; every node needs its own key pair");
      }
    }
    n.secret_key_file = reader.string("secret_key_file", "");
    if (reader.has("secret_key_file")) {
      if (n.public_key.empty()) {
        reader.fail_at(reader.get("secret_key_file"), "secret_key_file",
                       "needs the node's public_key beside it");
      }
      std::filesystem::path path(n.secret_key_file);
      if (path.is_relative()) {
        n.secret_key_file = (std::filesystem::path(spec.file).parent_path() / path).string();
      }
    }
    n.device = reader.string("device", "");
    if (!n.device.empty()) {
      if (auto problem = device_problem(n.device)) {
        reader.fail_at(reader.get("device"), "device", *problem);
      }
    }
    n.metrics = reader.string("metrics", "");
    if (!n.metrics.empty()) {
      auto colon = n.metrics.rfind(':');
      int port = 0;
      if (colon == std::string::npos ||
          std::from_chars(n.metrics.data() + colon + 1, n.metrics.data() + n.metrics.size(), port)
                  .ec != std::errc() ||
          port < 1 || port > 65535) {
        reader.fail_at(reader.get("metrics"), "metrics",
                       "\"" + n.metrics + "\" must be host:port, e.g. \"127.0.0.1:9100\"");
      }
      const std::string host = n.metrics.substr(0, colon);
      if (!metrics_host_is_an_address(host)) {
        reader.fail_at(reader.get("metrics"), "metrics",
                       "\"" + n.metrics + "\": the host must be an IP address (\"127.0.0.1\", "
                       "\"0.0.0.0\", \"[::1]\") or \"localhost\"; names are not resolved");
      }
      // A metrics address is a TCP listener of its own. Nodes on several machines may all
      // listen on a wildcard address ("0.0.0.0:9100"); any other address names one machine,
      // so two listeners on it, or one on a data or control endpoint, would collide.
      const std::string key = socket_key("tcp://" + n.metrics);
      const bool wildcard = host == "0.0.0.0" || host == "[::]";
      if (endpoint_lines.count(key) || control_lines.count(key) ||
          (!wildcard && !metrics_lines.emplace(key, n.line).second)) {
        reader.fail_at(reader.get("metrics"), "metrics",
                       "\"" + n.metrics + "\" is a socket another node or endpoint of this cluster "
                       "uses; every listener needs its own port");
      }
    }
    n.ring_link_port = static_cast<int>(reader.integer("ring_link_port", 0, 1, 65535));
    if (reader.has("ring_link_port")) {
      n.ring_link_port_line = line_of(*reader.get("ring_link_port"));
      if (!tcp_endpoint_host(n.endpoint)) {
        reader.fail_at(reader.get("ring_link_port"), "ring_link_port",
                       "needs a tcp:// endpoint (the link listens on its host), not \"" +
                           n.endpoint + "\"");
      }
    }
    reader.reject_unknown_keys();
    spec.nodes.push_back(std::move(n));
    ++index;
  }
  // Keys on some nodes only would leave those without one unable to talk to the others (a
  // CURVE socket speaks only to CURVE peers): say so here, not as handshake failures later.
  if (!key_lines.empty() && key_lines.size() != spec.nodes.size()) {
    for (std::size_t i = 0; i < spec.nodes.size(); ++i) {
      if (spec.nodes[i].public_key.empty()) {
        throw ConfigError(spec.file, spec.nodes[i].line, 0,
                          "node[" + std::to_string(i) + "].public_key",
                          "missing: other nodes have keys, and either every node has a "
                          "public_key or none does");
      }
    }
  }
}

std::size_t node_index(const TableReader& reader, const ClusterSpec& spec, const toml::node& value,
                       const std::string& key) {
  if (!value.is_string()) {
    reader.fail_at(&value, key, "must name a node by its id (a string), not " + type_name(value));
  }
  const std::string& id = value.as_string()->get();
  std::size_t index = spec.index_of(id);
  if (index == spec.nodes.size()) {
    std::vector<std::string> ids;
    for (const auto& n : spec.nodes) ids.push_back(n.id);
    reader.fail_at(&value, key, "unknown node \"" + id + "\"; nodes are " + join(ids));
  }
  return index;
}

void parse_topology_section(TableReader& root, ClusterSpec& spec) {
  const toml::table* table = sub_table(root, "topology");
  if (!table) root.fail_at(nullptr, "topology", "the [topology] table is required (kind, weights)");
  TopologySpec& topo = spec.topology;
  topo.line = line_of(*table);
  TableReader reader(spec.file, *table, "topology", topo.line);

  static const std::vector<std::pair<std::string, TopologyKind>> kinds = {
      {"ring", TopologyKind::ring},
      {"torus", TopologyKind::torus},
      {"hypercube", TopologyKind::hypercube},
      {"exponential", TopologyKind::exponential},
      {"one-peer-exponential", TopologyKind::one_peer_exponential},
      {"complete", TopologyKind::complete},
      {"edges", TopologyKind::edges}};
  std::vector<std::string> kind_names;
  for (const auto& [name, kind] : kinds) kind_names.push_back(name);
  if (!reader.has("kind")) reader.fail_at(nullptr, "kind", "is required; use " + quoted_list(kind_names));
  std::string kind = reader.choice("kind", "", kind_names);
  for (const auto& [name, value] : kinds) {
    if (name == kind) topo.kind = value;
  }

  std::string weights =
      reader.choice("weights", "metropolis", {"metropolis", "uniform", "explicit"});
  topo.weights = weights == "metropolis" ? WeightScheme::metropolis
                 : weights == "uniform"  ? WeightScheme::uniform
                                         : WeightScheme::explicit_matrix;
  topo.weights_line = reader.has("weights") ? line_of(*reader.get("weights")) : topo.line;

  auto only_for = [&](std::string_view key, bool allowed, const std::string& condition) {
    if (reader.has(key) && !allowed) {
      reader.fail_at(reader.get(key), key, "applies only when " + condition);
    }
  };
  only_for("rows", topo.kind == TopologyKind::torus, "kind = \"torus\"");
  only_for("cols", topo.kind == TopologyKind::torus, "kind = \"torus\"");
  only_for("edges", topo.kind == TopologyKind::edges, "kind = \"edges\"");
  only_for("matrix", topo.weights == WeightScheme::explicit_matrix, "weights = \"explicit\"");

  if (topo.kind == TopologyKind::torus) {
    if (!reader.has("rows") || !reader.has("cols")) {
      reader.fail_at(nullptr, "rows", "a torus needs rows and cols (rows * cols = number of nodes)");
    }
    topo.rows = static_cast<int>(reader.integer("rows", 0, 1, 1 << 16));
    topo.cols = static_cast<int>(reader.integer("cols", 0, 1, 1 << 16));
  }

  if (topo.kind == TopologyKind::edges) {
    const toml::array* edges = reader.array("edges");
    if (!edges || edges->empty()) {
      reader.fail_at(reader.get("edges"), "edges",
                     "kind = \"edges\" needs a non-empty list such as [[\"n0\", \"n1\"], ...]");
    }
    std::map<std::pair<std::size_t, std::size_t>, int> seen;
    for (std::size_t e = 0; e < edges->size(); ++e) {
      const toml::node& edge = *edges->get(e);
      std::string key = "edges[" + std::to_string(e) + "]";
      if (!edge.is_array() || edge.as_array()->size() != 2) {
        reader.fail_at(&edge, key, "each edge must be a pair of node ids, e.g. [\"n0\", \"n1\"]");
      }
      std::size_t a = node_index(reader, spec, *edge.as_array()->get(0), key);
      std::size_t b = node_index(reader, spec, *edge.as_array()->get(1), key);
      if (a == b) {
        reader.fail_at(&edge, key, "self-loop on \"" + spec.nodes[a].id +
                                       "\"; a node always keeps its own weight, list only edges "
                                       "between two different nodes");
      }
      auto canonical = std::minmax(a, b);
      if (auto [it, inserted] = seen.emplace(canonical, line_of(edge)); !inserted) {
        reader.fail_at(&edge, key, "duplicate edge " + spec.nodes[a].id + " - " +
                                       spec.nodes[b].id + " (first listed at line " +
                                       std::to_string(it->second) + "); edges are undirected");
      }
      topo.edges.emplace_back(a, b);
      topo.edge_lines.push_back(line_of(edge));
    }
  }

  if (topo.weights == WeightScheme::explicit_matrix) {
    const toml::array* matrix = reader.array("matrix");
    const std::size_t n = spec.nodes.size();
    if (!matrix) {
      reader.fail_at(nullptr, "matrix", "weights = \"explicit\" needs matrix = [[...], ...], " +
                                            std::to_string(n) + " rows of " + std::to_string(n) +
                                            " weights in node order");
    }
    topo.weights_line = line_of(*reader.get("matrix"));
    if (matrix->size() != n) {
      reader.fail_at(reader.get("matrix"), "matrix",
                     "has " + std::to_string(matrix->size()) + " rows; the cluster has " +
                         std::to_string(n) + " nodes, so it needs " + std::to_string(n));
    }
    for (std::size_t i = 0; i < n; ++i) {
      const toml::node& row = *matrix->get(i);
      std::string key = "matrix[" + std::to_string(i) + "]";
      if (!row.is_array() || row.as_array()->size() != n) {
        reader.fail_at(&row, key, "row " + std::to_string(i) + " must be an array of " +
                                      std::to_string(n) + " numbers");
      }
      std::vector<double> values;
      for (std::size_t j = 0; j < n; ++j) {
        const toml::node& cell = *row.as_array()->get(j);
        std::optional<double> value = cell.value<double>();  // integers convert too
        if (!cell.is_number() || !value) {
          reader.fail_at(&cell, key, "entry " + std::to_string(j) + " must be a number");
        }
        values.push_back(*value);
      }
      topo.matrix.push_back(std::move(values));
    }
  }
  reader.reject_unknown_keys();
}

PartitionSpec parse_partition(TableReader& reader) {
  const toml::node* node = reader.get("partition");
  std::string text = reader.string("partition", "iid");
  PartitionSpec p;
  const std::string valid = "use \"iid\", \"dirichlet:ALPHA\" (ALPHA > 0) or \"shards:K\" (K >= 1)";
  if (text == "iid") return p;
  auto colon = text.find(':');
  std::string kind = text.substr(0, colon);
  std::string arg = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (kind == "dirichlet") {
    p.kind = PartitionKind::dirichlet;
    char* end = nullptr;
    p.alpha = std::strtod(arg.c_str(), &end);
    if (arg.empty() || *end != '\0' || !(p.alpha > 0) || !std::isfinite(p.alpha)) {
      reader.fail_at(node, "partition", "\"" + text + "\": " + valid);
    }
    return p;
  }
  if (kind == "shards") {
    p.kind = PartitionKind::shards;
    auto [ptr, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), p.shards);
    if (arg.empty() || ec != std::errc() || ptr != arg.data() + arg.size() || p.shards < 1) {
      reader.fail_at(node, "partition", "\"" + text + "\": " + valid);
    }
    return p;
  }
  reader.fail_at(node, "partition", "\"" + text + "\" is not valid; " + valid);
}

void parse_training_section(TableReader& root, ClusterSpec& spec) {
  const toml::table* table = sub_table(root, "training");
  TrainingSpec& t = spec.training;
  if (!table) return;  // every training field has a default
  t.line = line_of(*table);
  TableReader r(spec.file, *table, "training", t.line);
  t.model = r.choice("model", t.model, {"logreg", "mlp", "cnn"});
  t.dataset = r.choice("dataset", t.dataset, {"fashion-mnist", "mnist", "synthetic"});
  t.data_dir = r.string("data_dir", t.data_dir);
  t.partition = parse_partition(r);
  t.batch_size = r.integer("batch_size", t.batch_size, 1, 1 << 20);
  t.lr = r.number("lr", t.lr, 0.0, 1e3);
  t.momentum = r.number("momentum", t.momentum, 0.0, 0.999999);
  t.nesterov = r.boolean("nesterov", t.nesterov);
  if (t.nesterov && t.momentum == 0.0) {
    r.fail_at(r.get("nesterov"), "nesterov", "needs momentum > 0");
  }
  t.weight_decay = r.number("weight_decay", t.weight_decay, 0.0, 1.0);
  t.lr_schedule = r.choice("lr_schedule", t.lr_schedule, {"constant", "step", "cosine"});
  t.warmup_steps = r.integer("warmup_steps", t.warmup_steps, 0, 1LL << 40);
  if (const toml::array* milestones = r.array("milestones")) {
    double previous = 0;
    for (const toml::node& m : *milestones) {
      if (!m.is_number()) r.fail_at(&m, "milestones", "must be epochs (numbers), ascending");
      double value = m.is_integer() ? static_cast<double>(m.as_integer()->get())
                                    : m.as_floating_point()->get();
      if (!(value > previous)) {
        r.fail_at(&m, "milestones", "must be positive epochs in ascending order");
      }
      previous = value;
      t.milestones.push_back(value);
    }
  }
  if (!t.milestones.empty() && t.lr_schedule != "step") {
    r.fail_at(r.get("milestones"), "milestones", "applies only when lr_schedule = \"step\"");
  }
  if (t.lr_schedule == "step" && t.milestones.empty()) {
    r.fail_at(r.get("lr_schedule"), "lr_schedule",
              "\"step\" needs milestones = [epoch, ...] at which lr is multiplied by gamma");
  }
  t.gamma = r.number("gamma", t.gamma, 0.0, 1.0);
  if (r.has("gamma") && t.lr_schedule != "step") {
    r.fail_at(r.get("gamma"), "gamma", "applies only when lr_schedule = \"step\"");
  }
  t.epochs = r.number("epochs", t.epochs, 1e-6, 1e6);
  t.max_steps = r.integer("max_steps", t.max_steps, 0, 1LL << 40);
  t.max_train_samples = r.integer("max_train_samples", t.max_train_samples, 0, 1LL << 40);
  t.eval_every = r.integer("eval_every", t.eval_every, 0, 1LL << 40);
  t.eval_batch_size = r.integer("eval_batch_size", t.eval_batch_size, 1, 1 << 20);
  t.device = r.string("device", t.device);
  if (auto problem = device_problem(t.device)) r.fail_at(r.get("device"), "device", *problem);
  t.threads = r.integer("threads", t.threads, 1, 1024);
  t.checkpoint_every = r.integer("checkpoint_every", t.checkpoint_every, 0, 1LL << 40);
  t.keep_checkpoints = r.integer("keep_checkpoints", t.keep_checkpoints, 1, 1000);
  r.reject_unknown_keys();
}

// period_schedule = [{ until_step = 500, period = 4 }, ...]: each phase's rounds every `period`
// steps up to its until_step; until_step strictly increasing (daemon/round_schedule.h).
void parse_period_schedule(TableReader& r, SyncSpec& s) {
  const toml::array* phases = r.array("period_schedule");
  if (!phases) return;
  std::int64_t previous = 0;
  std::size_t index = 0;
  for (const toml::node& element : *phases) {
    const std::string key = "period_schedule[" + std::to_string(index++) + "]";
    if (!element.is_table()) {
      r.fail_at(&element, key, "must be a table such as { until_step = 500, period = 4 }, not " +
                                   type_name(element));
    }
    TableReader phase(r.file(), *element.as_table(), r.field(key), line_of(element));
    PeriodPhase p;
    if (!phase.has("until_step")) phase.fail_at(&element, "until_step", "is required (the step this phase ends at)");
    if (!phase.has("period")) phase.fail_at(&element, "period", "is required (local steps between rounds in this phase)");
    p.until_step = phase.integer("until_step", 0, 1, 1LL << 40);
    p.period = phase.integer("period", 0, 1, 1 << 30);
    if (p.until_step <= previous) {
      phase.fail_at(phase.get("until_step"), "until_step",
                    std::to_string(p.until_step) + " must be greater than the previous phase's " +
                        std::to_string(previous));
    }
    phase.reject_unknown_keys();
    previous = p.until_step;
    s.period_schedule.push_back(p);
  }
}

void parse_sync_section(TableReader& root, ClusterSpec& spec) {
  const toml::table* table = sub_table(root, "sync");
  SyncSpec& s = spec.sync;
  if (!table) return;
  s.line = line_of(*table);
  TableReader r(spec.file, *table, "sync", s.line);
  const toml::node* mode_node = r.get("mode");
  s.mode = r.string("mode", s.mode);
  static const std::vector<std::string> all_modes = {"local", "gossip", "dynamic", "allreduce",
                                                     "post-local"};
  const auto& available = implemented_sync_modes();
  if (std::find(available.begin(), available.end(), s.mode) == available.end()) {
    bool known = std::find(all_modes.begin(), all_modes.end(), s.mode) != all_modes.end();
    r.fail_at(mode_node, "mode",
              "\"" + s.mode + "\" " +
                  (known ? "is not implemented in this build yet" : "is not a sync mode") +
                  "; this build has " + quoted_list(available));
  }
  s.period = r.integer("period", s.period, 1, 1 << 30);
  parse_period_schedule(r, s);
  s.staleness = r.integer("staleness", s.staleness, 0, 1);
  s.wire_precision = r.choice("wire_precision", s.wire_precision, {"f32", "f16", "int8"});

  s.round_timeout_ms = r.integer("round_timeout_ms", s.round_timeout_ms, 1, 3600000);
  s.heartbeat_ms = r.integer("heartbeat_ms", s.heartbeat_ms, 10, 60000);
  s.suspect_after_ms = r.integer("suspect_after_ms", s.suspect_after_ms, 10, 3600000);
  s.dead_after_ms = r.integer("dead_after_ms", s.dead_after_ms, 10, 3600000);
  s.startup_timeout_ms = r.integer("startup_timeout_ms", s.startup_timeout_ms, 0, 3600000);
  s.final_rounds = r.integer("final_rounds", s.final_rounds, 0, 1000000);
  s.final_allreduce = r.boolean("final_allreduce", s.final_allreduce);
  if (s.final_allreduce && s.mode == "local") {
    r.fail_at(r.get("final_allreduce"), "final_allreduce", "needs a mode that talks to peers, not \"local\"");
  }
  s.allreduce = r.choice("allreduce", s.allreduce, {"gradients", "parameters"});
  if (r.has("allreduce") && s.mode != "allreduce") {
    r.fail_at(r.get("allreduce"), "allreduce", "applies only when mode = \"allreduce\"");
  }
  s.collective_timeout_ms = r.integer("collective_timeout_ms", s.collective_timeout_ms, 1, 3600000);
  s.consensus_bound = r.number("consensus_bound", s.consensus_bound, 0.0, 1e30);
  s.collective_transport =
      r.choice("collective_transport", s.collective_transport, {"auto", "tcp", "unix", "zeromq"});
  if (r.has("collective_transport") && s.mode == "local") {
    r.fail_at(r.get("collective_transport"), "collective_transport",
              "needs a mode that talks to peers, not \"local\"");
  }
  if (s.collective_transport == "tcp" || s.collective_transport == "unix") {
    const std::string& links = s.collective_transport;
    for (std::size_t i = 0; i < spec.nodes.size(); ++i) {
      const NodeSpec& node = spec.nodes[i];
      const std::string which = "node[" + std::to_string(i) + "]";
      if (!node.public_key.empty()) {
        r.fail_at(r.get("collective_transport"), "collective_transport",
                  "\"" + links + "\" links are not encrypted, and " + which +
                      " has a CURVE public_key; use \"zeromq\" (or \"auto\")");
      }
      if (links == "tcp" && !tcp_endpoint_host(node.endpoint)) {
        r.fail_at(r.get("collective_transport"), "collective_transport",
                  "\"tcp\" needs tcp:// endpoints, and " + which + " has " + node.endpoint +
                      "; use \"zeromq\" (or \"auto\")");
      }
      if (links == "unix") {
        const auto path = ipc_endpoint_path(node.endpoint);
        if (!path) {
          r.fail_at(r.get("collective_transport"), "collective_transport",
                    "\"unix\" needs ipc:// endpoints, and " + which + " has " + node.endpoint +
                        "; use \"tcp\", \"zeromq\" or \"auto\"");
        } else if (auto problem = ipc_path_problem(ring_link_socket_path(*path))) {
          r.fail_at(r.get("collective_transport"), "collective_transport",
                    "the link socket of " + which + ", " + ring_link_socket_path(*path) + ": " +
                        *problem + "; use a shorter endpoint path, or \"zeromq\"");
        }
      }
    }
  }
  // Silently ignoring them would let an operator believe they act.
  for (const char* key : {"staleness", "final_rounds", "consensus_bound", "period_schedule"}) {
    if (r.has(key) && s.mode != "gossip") {
      r.fail_at(r.get(key), key, "applies only when mode = \"gossip\"");
    }
  }
  if (r.has("wire_precision") && s.mode != "gossip" && s.mode != "dynamic") {
    r.fail_at(r.get("wire_precision"), "wire_precision",
              "applies only when mode = \"gossip\" or \"dynamic\" (allreduces are always float32)");
  }
  if (s.wire_precision == "int8" && s.mode == "dynamic") {
    r.fail_at(r.get("wire_precision"), "wire_precision",
              "\"int8\" is for mode = \"gossip\" only (dynamic averaging sends \"f32\" or "
              "\"f16\")");
  }
  s.delta = r.number("delta", s.delta, 0.0, 1e30);
  s.delta_mode = r.choice("delta_mode", s.delta_mode, {"absolute", "relative", "budget"});
  s.budget_bytes_per_epoch = r.number("budget_bytes_per_epoch", s.budget_bytes_per_epoch, 0.0, 1e18);
  s.reply_timeout_ms = r.integer("reply_timeout_ms", s.reply_timeout_ms, 1, 3600000);
  s.max_lead_steps = r.integer("max_lead_steps", s.max_lead_steps, 0, 1 << 30);
  for (const char* key : {"delta", "delta_mode", "budget_bytes_per_epoch", "reply_timeout_ms",
                          "max_lead_steps"}) {
    if (r.has(key) && s.mode != "dynamic") {
      r.fail_at(r.get(key), key, "applies only when mode = \"dynamic\"");
    }
  }
  if (s.delta_mode == "budget" && s.budget_bytes_per_epoch <= 0) {
    r.fail_at(r.get("delta_mode"), "delta_mode",
              "\"budget\" needs budget_bytes_per_epoch > 0 (bytes this node may send per epoch)");
  }
  if (s.suspect_after_ms < s.heartbeat_ms) {
    r.fail_at(r.get("suspect_after_ms"), "suspect_after_ms",
              "must be at least heartbeat_ms (" + std::to_string(s.heartbeat_ms) + ")");
  }
  if (s.dead_after_ms < s.suspect_after_ms) {
    r.fail_at(r.get("dead_after_ms"), "dead_after_ms",
              "must be at least suspect_after_ms (" + std::to_string(s.suspect_after_ms) + ")");
  }
  r.reject_unknown_keys();
}

void parse_run_section(TableReader& root, ClusterSpec& spec) {
  const toml::table* table = sub_table(root, "run");
  if (!table) return;
  spec.run.line = line_of(*table);
  TableReader r(spec.file, *table, "run", spec.run.line);
  spec.run.dir = r.string("dir", "");
  spec.run.log_level =
      r.choice("log_level", spec.run.log_level, {"trace", "debug", "info", "warn", "error"});
  spec.run.round_metrics_interval_ms =
      r.integer("round_metrics_interval_ms", spec.run.round_metrics_interval_ms, 0, 86400000);
  r.reject_unknown_keys();
}

// A fixed ring_link_port is a TCP listener on its node's host: it must not be a socket any
// node of the file uses (data, control or metrics endpoint, another ring link), and it only
// means something where collectives travel over ring links. After [sync], which decides that.
void check_ring_link_ports(const ClusterSpec& spec) {
  std::map<std::string, std::string> taken;  // socket key -> what uses it
  for (std::size_t i = 0; i < spec.nodes.size(); ++i) {
    const NodeSpec& n = spec.nodes[i];
    const std::string who = "node[" + std::to_string(i) + "]";
    taken.emplace(socket_key(n.endpoint), who + "'s endpoint");
    if (!n.control.empty()) taken.emplace(socket_key(n.control), who + "'s control endpoint");
    if (!n.metrics.empty()) taken.emplace(socket_key("tcp://" + n.metrics), who + "'s metrics address");
  }
  for (std::size_t i = 0; i < spec.nodes.size(); ++i) {
    const NodeSpec& n = spec.nodes[i];
    if (n.ring_link_port == 0) continue;
    const std::string field = "node[" + std::to_string(i) + "].ring_link_port";
    if (!collectives_use_tcp_links(spec)) {
      throw ConfigError(spec.file, n.ring_link_port_line, 0, field,
                        std::string("applies only where ring allreduce chunks travel over TCP "
                                    "links, and [sync] sends them ") +
                            (collective_links(spec) == CollectiveLinks::unix_socket
                                 ? "over Unix-domain socket links"
                                 : "through ZeroMQ") +
                            " (mode, collective_transport, CURVE keys or an ipc:// endpoint "
                            "decide)");
    }
    const std::string key = socket_key("tcp://" + *tcp_endpoint_host(n.endpoint) + ":" +
                                       std::to_string(n.ring_link_port));
    if (auto [it, inserted] = taken.emplace(key, "node[" + std::to_string(i) + "]'s ring link");
        !inserted) {
      throw ConfigError(spec.file, n.ring_link_port_line, 0, field,
                        std::to_string(n.ring_link_port) + " is taken on that host by " +
                            it->second + "; every listener needs its own port");
    }
  }
  // Unix-domain links listen beside each ipc:// endpoint; that path must be nobody else's.
  if (collective_links(spec) != CollectiveLinks::unix_socket) return;
  for (std::size_t i = 0; i < spec.nodes.size(); ++i) {
    const NodeSpec& n = spec.nodes[i];
    const std::string path = ring_link_socket_path(*ipc_endpoint_path(n.endpoint));
    if (auto [it, inserted] = taken.emplace(socket_key("ipc://" + path),
                                            "node[" + std::to_string(i) + "]'s ring link");
        !inserted) {
      throw ConfigError(spec.file, n.line, 0, "node[" + std::to_string(i) + "].endpoint",
                        "its ring link would listen at " + path + ", which " + it->second +
                            " uses; choose another endpoint path, or [sync] "
                            "collective_transport = \"zeromq\"");
    }
  }
}

ClusterSpec parse_table(const toml::table& root_table, const std::string& source_name) {
  ClusterSpec spec;
  spec.file = source_name;
  TableReader root(spec.file, root_table, "", 1);
  // Order matters: nodes first, because edges and matrices refer to them.
  parse_cluster_section(root, spec);
  parse_nodes(root, spec);
  parse_topology_section(root, spec);
  parse_training_section(root, spec);
  parse_sync_section(root, spec);
  check_ring_link_ports(spec);
  parse_run_section(root, spec);
  root.reject_unknown_keys();
  return spec;
}

}  // namespace

ClusterSpec parse_cluster_text(std::string_view text, const std::string& source_name) {
  toml::table table;
  try {
    table = toml::parse(text, source_name);
  } catch (const toml::parse_error& e) {
    throw ConfigError(source_name, static_cast<int>(e.source().begin.line),
                      static_cast<int>(e.source().begin.column), "",
                      "TOML syntax error: " + std::string(e.description()));
  }
  return parse_table(table, source_name);
}

ClusterSpec parse_cluster_file(const std::string& path) {
  if (path.empty()) throw ConfigError("", 0, 0, "", "no cluster file given (an empty path)");
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw ConfigError(path, 0, 0, "", "is a directory, not a cluster file");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path, 0, 0, "", "cannot open cluster file: " + std::string(std::strerror(errno)));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return parse_cluster_text(buffer.str(), path);
}

std::size_t ClusterSpec::index_of(const std::string& id) const {
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].id == id) return i;
  }
  return nodes.size();
}

std::string to_string(TopologyKind kind) {
  switch (kind) {
    case TopologyKind::ring: return "ring";
    case TopologyKind::torus: return "torus";
    case TopologyKind::hypercube: return "hypercube";
    case TopologyKind::exponential: return "exponential";
    case TopologyKind::one_peer_exponential: return "one-peer-exponential";
    case TopologyKind::complete: return "complete";
    case TopologyKind::edges: return "edges";
  }
  return "?";
}

std::string to_string(WeightScheme scheme) {
  switch (scheme) {
    case WeightScheme::metropolis: return "metropolis";
    case WeightScheme::uniform: return "uniform";
    case WeightScheme::explicit_matrix: return "explicit";
  }
  return "?";
}

}  // namespace starling::topology
