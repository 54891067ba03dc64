#pragma once
// Reading cluster files (TOML). Parsing is strict: every table and key is known, every value has
// the right type and range, and an unknown key is an error (a typo must never pass silently).
// Errors are ConfigError values naming file, line, field and what would be valid.
//
// Only per-field and per-section checks happen here; properties of the whole graph
// (connectivity, sizes that a graph kind requires, weight sums) are checked by compile_topology.
#include <optional>
#include <string>
#include <string_view>

#include "topology/cluster_spec.h"

namespace starling::topology {

// Reads and parses a cluster file. Throws ConfigError (including for a missing file).
ClusterSpec parse_cluster_file(const std::string& path);

// Parses cluster text; `source_name` is used in error messages in place of a path.
ClusterSpec parse_cluster_text(std::string_view text, const std::string& source_name);

// The sync modes this build implements; others are refused with a message naming these.
const std::vector<std::string>& implemented_sync_modes();

// The host of a "tcp://host:port" endpoint (an IPv6 address keeps its brackets), or nullopt
// for an ipc:// endpoint or a tcp:// one without host:port.
std::optional<std::string> tcp_endpoint_host(const std::string& endpoint);
// "[::1]" -> "::1": an IPv6 address is written in brackets before its port, as in a URL; the
// socket calls want it bare. Any other host is returned as it is.
std::string without_brackets(const std::string& host);

// The path of an "ipc://path" endpoint, or nullopt for any other.
std::optional<std::string> ipc_endpoint_path(const std::string& endpoint);
// Where the ring link of a node with the ipc:// endpoint at `ipc_path` listens: beside it.
std::string ring_link_socket_path(const std::string& ipc_path);

// How this cluster's ring allreduce chunks (and gossip payloads) travel: over plain TCP links,
// over Unix-domain socket links, or through ZeroMQ ([sync] collective_transport; the same
// answer on every node of the file).
enum class CollectiveLinks { zeromq, tcp, unix_socket };
CollectiveLinks collective_links(const ClusterSpec& spec);
bool collectives_use_tcp_links(const ClusterSpec& spec);

// Why `path` cannot be a Unix socket's (an ipc:// endpoint's): longer than the 107 bytes a
// socket address holds (bind would fail with "File name too long"), or empty. nullopt if fine.
std::optional<std::string> ipc_path_problem(const std::string& path);

}  // namespace starling::topology
