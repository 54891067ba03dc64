#include "daemon/ctl_up.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <cstdlib>
#include <sstream>

#include "daemon/ctl_common.h"
#include "daemon/ctl_status.h"
#include "daemon/default_cluster.h"
#include "daemon/exit_codes.h"
#include "topology/cluster_file.h"
#include "topology/config_error.h"
#include "topology/topology.h"

namespace starling::daemon {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

int signal_pipe[2] = {-1, -1};
std::atomic<int> received_signal{0};

void on_signal(int signal) {
  received_signal.store(signal);
  char byte = 1;
  [[maybe_unused]] auto n = ::write(signal_pipe[1], &byte, 1);
}

void install_signal_handlers() {
  if (::pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error("pipe failed");
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  // A closed terminal stops the cluster like Ctrl-C: the nodes run in their own process
  // group, which the hangup does not reach, and would train on with nobody to stop them.
  ::sigaction(SIGHUP, &action, nullptr);
  // Output into a pipe whose reader went away (`starlingctl up | head`) must not end
  // starlingctl and orphan the nodes: the writes fail, and the run goes on.
  ::signal(SIGPIPE, SIG_IGN);
}

int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot find a free loopback port");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string timestamp() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  ::localtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y%m%d-%H%M%S", &tm);
  return buffer;
}

bool is_executable_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) && ::access(path.c_str(), X_OK) == 0;
}

// The starlingd to run: --starlingd, else the one next to this starlingctl (a build tree has
// both in build/daemon/, an install both in the same bin/), else the first on PATH. Throws
// std::runtime_error saying where it looked, before anything is started or created: four
// nodes that each fail to exec would say less, and leave a run directory behind.
std::string find_starlingd(const std::string& requested) {
  if (!requested.empty()) {
    if (is_executable_file(requested)) return requested;
    throw std::runtime_error("--starlingd " + requested + " is not an executable file");
  }
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && is_executable_file(self.parent_path() / "starlingd")) {
    return (self.parent_path() / "starlingd").string();
  }
  const char* path = std::getenv("PATH");
  std::stringstream directories(path ? path : "");
  for (std::string directory; std::getline(directories, directory, ':');) {
    if (!directory.empty() && is_executable_file(fs::path(directory) / "starlingd")) {
      return (fs::path(directory) / "starlingd").string();
    }
  }
  throw std::runtime_error("no starlingd next to this starlingctl" +
                           (ec ? std::string() : " (in " + self.parent_path().string() + ")") +
                           " or on PATH; pass --starlingd PATH");
}

struct Child {
  std::string node;
  pid_t pid = -1;
  bool exited = false;
  int status = 0;
  fs::path log;
};

pid_t spawn(const std::string& starlingd, const std::vector<std::string>& args,
            const fs::path& log) {
  // Everything the child needs is built before the fork: a child of a process with threads
  // may only make async-signal-safe calls until it execs (an allocation could wait forever
  // for a malloc lock another thread held at the fork).
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(starlingd.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const std::string exec_failed = "starlingctl: cannot run " + starlingd + ": ";
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  if (pid > 0) return pid;
  // Child: its own process group, so a terminal's Ctrl-C reaches only starlingctl, which then
  // stops the nodes in order.
  ::setpgid(0, 0);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGINT, &dfl, nullptr);
  ::sigaction(SIGTERM, &dfl, nullptr);
  ::sigaction(SIGHUP, &dfl, nullptr);
  ::sigaction(SIGPIPE, &dfl, nullptr);  // an ignored signal would stay ignored across exec
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd >= 0) {
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
  }
  int devnull = ::open("/dev/null", O_RDONLY);
  if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
  ::execvp(argv[0], argv.data());
  const char* why = std::strerror(errno);  // glibc's message table: no allocation
  (void)!::write(STDERR_FILENO, exec_failed.data(), exec_failed.size());
  (void)!::write(STDERR_FILENO, why, std::strlen(why));
  (void)!::write(STDERR_FILENO, "\n", 1);
  ::_exit(127);
}

std::string describe_exit(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + strsignal(WTERMSIG(status));
  return "?";
}

bool clean_exit(int status) { return WIFEXITED(status) && WEXITSTATUS(status) == 0; }

// starlingd's exit codes for what stops a node before it trains: the cluster file or command
// line (2), the dataset or device (3), an address or node directory in use (4).
bool failed_to_start(int status) {
  if (!WIFEXITED(status)) return false;
  const int code = WEXITSTATUS(status);
  return code == kExitConfig || code == kExitTraining || code == kExitNetwork;
}

std::string tail(const fs::path& path, std::size_t lines) {
  std::ifstream in(path);
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    last.push_back(line);
    if (last.size() > lines) last.pop_front();
  }
  std::string out;
  for (const auto& l : last) out += "    " + l + "\n";
  return out;
}

// A JSON number, or `fallback` when the key is missing or not a number (NaN is written as null).
double number_or(const nlohmann::json& j, const char* key, double fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

std::optional<nlohmann::json> last_summary(const fs::path& metrics) {
  std::ifstream in(metrics);
  std::string line;
  std::optional<nlohmann::json> summary;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.value("event", "") == "summary") summary = j;
  }
  return summary;
}

void reap(std::vector<Child>& children) {
  for (auto& c : children) {
    if (c.exited) continue;
    int status = 0;
    if (::waitpid(c.pid, &status, WNOHANG) == c.pid) {
      c.exited = true;
      c.status = status;
    }
  }
}

// A node that has exited cannot answer: the table says how it ended (its log was printed
// when it did) rather than the generic "unreachable: no control socket".
void mark_exited(const std::vector<Child>& children, std::vector<NodeAnswer>& answers) {
  for (auto& answer : answers) {
    if (answer.answered) continue;
    for (const auto& c : children) {
      if (c.node == answer.node && c.exited) answer.error = "exited (" + describe_exit(c.status) + ")";
    }
  }
}

bool all_exited(const std::vector<Child>& children) {
  for (const auto& c : children) {
    if (!c.exited) return false;
  }
  return true;
}

void print_summary(const topology::ClusterSpec& spec, const fs::path& run_dir,
                   const std::vector<Child>& children, double wall, std::ostream& out) {
  out << "\nsummary of " << spec.name << " (" << run_dir.string() << ", " << fixed_digits(wall, 1)
      << " s)\n";
  out << std::left << std::setw(8) << "node" << std::setw(22) << "result" << std::setw(10)
      << "accuracy" << std::setw(12) << "consensus" << std::setw(12) << "sent" << std::setw(10)
      << "steps" << "wall s\n";
  double accuracy_sum = 0;
  int accuracy_count = 0;
  double bytes = 0;
  for (const auto& c : children) {
    auto summary = last_summary(run_dir / c.node / "metrics.jsonl");
    std::string result = c.exited ? describe_exit(c.status) : "running";
    if (summary && !summary->value("finished", false)) result += ", stopped early";
    out << std::setw(8) << c.node << std::setw(22) << result;
    if (!summary) {
      out << "no summary (see " << (run_dir / c.node / "starlingd.log").string() << ")\n";
      continue;
    }
    const auto& s = *summary;
    std::string accuracy = "-";
    if (s.contains("accuracy") && s["accuracy"].is_number()) {
      accuracy = fixed_digits(100.0 * s["accuracy"].get<double>(), 2) + "%";
      accuracy_sum += s["accuracy"].get<double>();
      ++accuracy_count;
    }
    bytes += number_or(s, "bytes_sent", 0.0);
    out << std::setw(10) << accuracy << std::setw(12)
        << fixed_digits(number_or(s, "consensus_distance", NAN), 4) << std::setw(12)
        << human_bytes(number_or(s, "bytes_sent", 0.0)) << std::setw(10)
        << static_cast<std::int64_t>(number_or(s, "step", 0)) << fixed_digits(number_or(s, "wall_seconds", 0.0), 1)
        << "\n";
  }
  if (accuracy_count) {
    out << "mean test accuracy " << fixed_digits(100.0 * accuracy_sum / accuracy_count, 2)
        << "%, " << human_bytes(bytes) << " sent in all\n";
  }
}

}  // namespace

int run_up(const UpOptions& options, std::ostream& out, std::ostream& err) {
  // 1. The cluster file: the given one, or the embedded default with fresh loopback ports.
  fs::path run_dir;
  std::string cluster_text;
  topology::ClusterSpec spec;
  try {
    if (options.cluster_path.empty()) {
      run_dir = options.run_dir.empty() ? fs::path("runs") / ("fmnist-ring4-" + timestamp())
                                        : fs::path(options.run_dir);
      run_dir = fs::absolute(run_dir);
      std::vector<int> ports;
      for (int i = 0; i < kDefaultClusterNodes; ++i) ports.push_back(free_loopback_port());
      cluster_text = default_cluster_text(ports, run_dir.string());
      spec = topology::parse_cluster_text(cluster_text, "<embedded default>");
    } else {
      spec = topology::parse_cluster_file(options.cluster_path);
      std::ifstream in(options.cluster_path);
      std::stringstream buffer;
      buffer << in.rdbuf();
      cluster_text = buffer.str();
      run_dir = options.run_dir.empty() ? fs::path("runs") / (spec.name + "-" + timestamp())
                                        : fs::path(options.run_dir);
      run_dir = fs::absolute(run_dir);
    }
    topology::Topology::compile(spec);
  } catch (const topology::ConfigError& e) {
    err << "starlingctl: " << e.what() << "\n";
    if (options.cluster_path.empty() && e.field().find(".control") != std::string::npos) {
      // The only control paths of the embedded default are the ones it puts in --run-dir.
      err << "starlingctl: the embedded default puts each node's control socket in its run "
             "directory; use a shorter --run-dir\n";
    }
    return 2;
  }

  std::string starlingd;
  try {
    starlingd = find_starlingd(options.starlingd);
  } catch (const std::runtime_error& e) {
    err << "starlingctl: " << e.what() << "\n";
    return 2;
  }

  // 2. The run directory: the cluster file the nodes run, and one folder per node.
  run_dir = run_dir.lexically_normal();
  if (run_dir.filename().empty() && run_dir.has_relative_path()) run_dir = run_dir.parent_path();  // "x/"
  fs::path cluster_file = run_dir / "cluster.toml";
  {
    std::error_code ec;
    fs::create_directories(run_dir, ec);
    if (!ec) {
      for (const auto& node : spec.nodes) fs::create_directories(run_dir / node.id, ec);
    }
    if (ec) {
      err << "starlingctl: cannot create the run directory " << run_dir.string() << ": "
          << ec.message() << "\n";
      return 2;
    }
    std::ofstream file(cluster_file);
    file << cluster_text;
    if (!file.flush()) {
      err << "starlingctl: cannot write " << cluster_file.string() << "\n";
      return 2;
    }
  }
  // `latest` points at the newest run; only a link we made is replaced, never a user's file.
  std::error_code ec;
  fs::path latest = run_dir.parent_path() / "latest";
  if (!fs::exists(fs::symlink_status(latest, ec)) || fs::is_symlink(fs::symlink_status(latest, ec))) {
    fs::remove(latest, ec);
    fs::create_directory_symlink(run_dir.filename(), latest, ec);
  } else {
    err << "starlingctl: note: " << latest.string() << " is not a link; left alone\n";
  }
  out << "cluster " << spec.name << ": " << spec.nodes.size() << " nodes, mode "
      << spec.sync.mode << "; run directory " << run_dir.string() << "\n"
      << "from another terminal: starlingctl status " << cluster_file.string() << "\n";

  // 3. One starlingd per node.
  install_signal_handlers();
  std::vector<Child> children;
  for (const auto& node : spec.nodes) {
    Child c;
    c.node = node.id;
    c.log = run_dir / node.id / "starlingd.log";
    c.pid = spawn(starlingd,
                  {"--config", cluster_file.string(), "--node", node.id, "--run-dir",
                   run_dir.string()},
                  c.log);
    children.push_back(c);
  }
  out << "started " << children.size() << " nodes (logs: " << run_dir.string()
      << "/<node>/starlingd.log); Ctrl-C stops them\n";

  // 4. Watch them until all have exited; forward a stop request.
  const bool tty = ::isatty(STDOUT_FILENO);
  const auto start = Clock::now();
  auto last_print = Clock::now() - std::chrono::hours(1);
  std::size_t printed_lines = 0;
  bool stopping = false;
  Clock::time_point stop_deadline{};
  std::vector<bool> reported(children.size(), false);
  auto stop_all = [&](const std::string& why) {
    stopping = true;
    stop_deadline = Clock::now() + options.stop_grace;
    out << "\n" << why << "stopping all nodes (each writes a checkpoint first)...\n";
    printed_lines = 0;
    for (const auto& c : children) {
      if (!c.exited) ::kill(c.pid, SIGTERM);
    }
  };
  while (true) {
    reap(children);
    std::string could_not_start;
    for (std::size_t i = 0; i < children.size(); ++i) {
      if (children[i].exited && !reported[i]) {
        reported[i] = true;
        if (!clean_exit(children[i].status)) {
          err << "node " << children[i].node << " failed (" << describe_exit(children[i].status)
              << "); last lines of " << children[i].log.string() << ":\n"
              << tail(children[i].log, 8);
          printed_lines = 0;  // do not overwrite the error with the next table
          if (failed_to_start(children[i].status)) could_not_start = children[i].node;
        }
      }
    }
    if (all_exited(children)) break;
    // A node that crashes mid-run is a fault the cluster rides out. One that could not start
    // (its file, its data or its address) is a mistake in this run: the others would wait
    // for it until their startup timeout, so the run ends now, with its log on screen.
    if (!could_not_start.empty() && !stopping) {
      stop_all("node " + could_not_start + " could not start; ");
    }
    if (received_signal.load() != 0 && !stopping) stop_all("");
    if (stopping && Clock::now() >= stop_deadline) {
      for (const auto& c : children) {
        if (!c.exited) {
          err << "node " << c.node << " did not stop within " << options.stop_grace.count()
              << " s; killing it\n";
          ::kill(c.pid, SIGKILL);
        }
      }
      stop_deadline = Clock::now() + std::chrono::hours(1);
    }
    auto now = Clock::now();
    auto every = tty ? std::chrono::seconds(1) : std::chrono::seconds(10);
    if (!stopping && now - last_print >= every) {
      auto answers = ask_cluster(spec, "status", {}, std::chrono::milliseconds(800));
      mark_exited(children, answers);
      std::ostringstream table;
      table << "[" << fixed_digits(std::chrono::duration<double>(now - start).count(), 0)
            << " s]\n";
      print_status_table(answers, table);
      std::string text = table.str();
      if (tty && printed_lines > 0) out << "\033[" << printed_lines << "A\033[J";
      out << text << std::flush;
      printed_lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
      last_print = now;
    }
    pollfd pfd{signal_pipe[0], POLLIN, 0};
    if (::poll(&pfd, 1, 200) > 0) {
      char buffer[16];
      while (::read(signal_pipe[0], buffer, sizeof buffer) > 0) {
      }
    }
  }

  double wall = std::chrono::duration<double>(Clock::now() - start).count();
  print_summary(spec, run_dir, children, wall, out);
  bool ok = true;
  for (const auto& c : children) ok = ok && clean_exit(c.status);
  if (!ok) err << "starlingctl: some nodes failed; see their logs in " << run_dir.string() << "\n";
  return ok ? 0 : 1;
}

}  // namespace starling::daemon
