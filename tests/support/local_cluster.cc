#include "support/local_cluster.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "daemon/control_client.h"
#include "support/ports.h"

namespace starling::testing {

namespace fs = std::filesystem;

LocalCluster::LocalCluster(const LocalClusterOptions& options) {
  std::string pattern = (fs::temp_directory_path() / "starling-cluster-XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  dir_ = pattern;
  std::ostringstream text;
  text << "[cluster]\nname = \"" << options.name << "\"\nseed = 1\n\n[topology]\n"
       << options.topology << "\n\n[training]\n" << options.training << "\n\n[sync]\n"
       << options.sync << "\n\n[run]\ndir = \"" << (dir_ / "run").string() << "\"\n"
       << options.run << "\n";
  controls_ = options.controls;
  controls_.resize(options.nodes);
  for (std::size_t i = 0; i < options.nodes; ++i) {
    ids_.push_back("n" + std::to_string(i));
    if (i < options.endpoints.size()) {
      endpoints_.push_back(options.endpoints[i]);
    } else if (options.ipc_endpoints) {
      fs::create_directories(dir_ / "data");
      endpoints_.push_back("ipc://" + (dir_ / "data" / (ids_[i] + ".sock")).string());
    } else {
      endpoints_.push_back(loopback_endpoint());
    }
    text << "\n[[node]]\nid = \"" << ids_[i] << "\"\nendpoint = \"" << endpoints_[i]
         << "\"\ncontrol = \"" << control_endpoint(i) << "\"\n";
    if (options.metrics) {
      metrics_ports_.push_back(free_tcp_port());
      text << "metrics = \"127.0.0.1:" << metrics_ports_.back() << "\"\n";
    }
    if (i < options.node_lines.size()) text << options.node_lines[i] << "\n";
  }
  cluster_file_ = dir_ / "cluster.toml";
  std::ofstream(cluster_file_) << text.str();
  namespaces_ = options.namespaces;
  namespaces_.resize(options.nodes);
  pids_.assign(options.nodes, -1);
  pid_notes_.assign(options.nodes, "");
}

LocalCluster::~LocalCluster() {
  for (std::size_t i = 0; i < pids_.size(); ++i) {
    if (pids_[i] > 0) {
      ::kill(pids_[i], SIGKILL);
      ::waitpid(pids_[i], nullptr, 0);
    }
  }
  if (!std::getenv("STARLING_KEEP_TEST_DIRS")) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
}

std::string LocalCluster::control_endpoint(std::size_t i) const {
  if (i < controls_.size() && !controls_[i].empty()) return controls_[i];
  return "ipc://" + (dir_ / "ctl" / (ids_[i] + ".sock")).string();
}

void LocalCluster::start(std::size_t i, const std::vector<std::string>& extra_args,
                         const std::filesystem::path& config) {
  fs::create_directories(dir_ / "logs");
  fs::path log = dir_ / "logs" / (ids_[i] + ".log");
  // Built before the fork: this process has threads (ZeroMQ's, gtest's), and its child may only
  // make async-signal-safe calls until it execs; an allocation there could wait forever on a
  // malloc lock another thread held at the fork, and the node would never start.
  std::vector<std::string> args = {STARLINGD_PATH, "--config",
                                   (config.empty() ? cluster_file_ : config).string(), "--node",
                                   ids_[i]};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  // `ip netns exec` execs the daemon in place: the pid stays the daemon's, for signals.
  if (!namespaces_[i].empty()) args.insert(args.begin(), {"ip", "netns", "exec", namespaces_[i]});
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
    }
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  pids_[i] = pid;
  pid_notes_[i].clear();
}

void LocalCluster::start_all() {
  for (std::size_t i = 0; i < size(); ++i) start(i);
}

void LocalCluster::signal(std::size_t i, int sig) {
  if (pids_[i] > 0) ::kill(pids_[i], sig);
}

std::optional<int> LocalCluster::wait_exit(std::size_t i, std::chrono::milliseconds timeout) {
  if (pids_[i] <= 0) return std::nullopt;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pids_[i], &status, WNOHANG);
    if (r == pids_[i]) {
      pid_notes_[i] = "process " + std::to_string(pids_[i]) + " " + describe_wait_status(status);
      pids_[i] = -1;
      return status;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool LocalCluster::running(std::size_t i) {
  if (pids_[i] <= 0) return false;
  int status = 0;
  if (::waitpid(pids_[i], &status, WNOHANG) == pids_[i]) {
    pid_notes_[i] = "process " + std::to_string(pids_[i]) + " " + describe_wait_status(status);
    pids_[i] = -1;
    return false;
  }
  return true;
}

std::optional<nlohmann::json> LocalCluster::ask(std::size_t i, const std::string& command,
                                                std::chrono::milliseconds timeout) {
  auto result = daemon::query_node(control_endpoint(i), {{"cmd", command}}, timeout);
  if (!result.answered) return std::nullopt;
  return result.reply;
}

std::vector<nlohmann::json> LocalCluster::metrics(std::size_t i, const std::string& event) const {
  std::vector<nlohmann::json> lines;
  std::ifstream in(dir_ / "run" / ids_[i] / "metrics.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;
    if (event.empty() || j.value("event", "") == event) lines.push_back(std::move(j));
  }
  return lines;
}

namespace {

// The file's text, or what could be read of it. The /proc files of a process that is exiting
// fail mid-read (ESRCH), and libstdc++'s filebuf reports a failed read by throwing: a log
// asked for while a node dies must still come back.
std::string read_small_file(const fs::path& path) {
  std::string text;
  try {
    std::ifstream in(path);
    for (std::istreambuf_iterator<char> it(in), end; it != end; ++it) text.push_back(*it);
  } catch (const std::exception&) {
    text += "?";
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\0')) text.pop_back();
  return text;
}

// Where each thread of a live process is: its name, state letter (R, S, D...), the kernel
// function it sleeps in and the system call it is in (number first). Enough to tell a node
// blocked on a lock (futex) from one polling sockets or spinning, without a debugger.
std::string describe_threads(pid_t pid) {
  std::ostringstream out;
  std::error_code ec;
  // increment(ec), not ++: the directory may go away under the iterator as the process exits.
  for (fs::directory_iterator it(fs::path("/proc") / std::to_string(pid) / "task", ec), end;
       !ec && it != end; it.increment(ec)) {
    const fs::directory_entry& task = *it;
    const std::string stat = read_small_file(task.path() / "stat");
    const auto close = stat.rfind(')');
    const char state = close != std::string::npos && close + 2 < stat.size() ? stat[close + 2] : '?';
    std::string syscall = read_small_file(task.path() / "syscall");
    syscall = syscall.substr(0, syscall.find(' '));
    out << "\n  thread " << task.path().filename().string() << " ("
        << read_small_file(task.path() / "comm") << "): " << state << ", in "
        << read_small_file(task.path() / "wchan") << ", syscall " << syscall;
  }
  return out.str();
}

}  // namespace

std::string describe_wait_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")" + (WCOREDUMP(status) ? ", core dumped" : "");
  }
  return "ended with wait status " + std::to_string(status);
}

std::string LocalCluster::log(std::size_t i) const {
  std::string text = read_small_file(dir_ / "logs" / (ids_[i] + ".log"));
  text += "\n[" + ids_[i] + ": ";
  if (pids_[i] <= 0) {
    text += pid_notes_[i].empty() ? "not started by this test" : pid_notes_[i];
  } else {
    // Looks without reaping (WNOWAIT): wait_exit and running still see the exit.
    siginfo_t info{};
    if (::waitid(P_PID, pids_[i], &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pids_[i]) {
      text += "process " + std::to_string(pids_[i]) + " ";
      text += info.si_code == CLD_EXITED ? "exited with code " + std::to_string(info.si_status)
                                         : "was killed by signal " + std::to_string(info.si_status) +
                                               " (" + strsignal(info.si_status) + ")";
    } else {
      text += "process " + std::to_string(pids_[i]) + " is running" + describe_threads(pids_[i]);
    }
  }
  return text + "]";
}

bool exited_cleanly(std::optional<int> status) {
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
}

std::string run_command(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  char buffer[4096];
  while (pipe && std::fgets(buffer, sizeof buffer, pipe)) output += buffer;
  if (pipe) pclose(pipe);
  return output;
}

}  // namespace starling::testing
