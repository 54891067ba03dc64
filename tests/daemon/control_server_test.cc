// Where a control socket goes and who may connect to it: the socket file is owner-only, a
// directory the operator named is left as it is (it may be /tmp or a home directory), and only
// Starling's own runtime directory is made private.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <thread>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "daemon/control_client.h"
#include "daemon/control_server.h"
#include "daemon/runtime_paths.h"
#include "training/temp_dir.h"

namespace starling::daemon {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

unsigned mode_of(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

class ControlSocketPlace : public ::testing::Test {
 protected:
  // Starts server_ on `endpoint`, answering every request with {"ok": true}.
  void serve(const std::string& endpoint) {
    server_ = std::make_unique<ControlServer>(endpoint, [this](const ControlRequest&, ReplyToken token) {
      server_->reply(token, ok_reply(nlohmann::json::object()));
    });
    server_->start();
  }
  // Declared first, so removed last: the server goes (and removes its socket) before its directory.
  training::testing::TempDir scratch_;
  const fs::path dir_ = scratch_.path();
  std::unique_ptr<ControlServer> server_;
};

TEST_F(ControlSocketPlace, ANamedSharedDirectoryIsLeftAloneAndTheSocketIsOwnerOnly) {
  const fs::path shared = dir_ / "shared";
  fs::create_directory(shared);
  ASSERT_EQ(::chmod(shared.c_str(), 01777), 0);  // like /tmp
  const std::string endpoint = "ipc://" + (shared / "n0.sock").string();
  serve(endpoint);
  EXPECT_EQ(mode_of(shared), 01777u) << "the daemon re-moded a directory it was only told to use";
  EXPECT_EQ(mode_of(shared / "n0.sock") & 077, 0u) << std::oct << mode_of(shared / "n0.sock");
  EXPECT_TRUE(query_node(endpoint, {{"cmd", "status"}}, 2000ms).answered);
}

TEST_F(ControlSocketPlace, MissingDirectoriesOfANamedPathAreCreatedOwnerOnly) {
  const std::string endpoint = "ipc://" + (dir_ / "a" / "b" / "n0.sock").string();
  serve(endpoint);
  EXPECT_EQ(mode_of(dir_ / "a") & 077, 0u);
  EXPECT_EQ(mode_of(dir_ / "a" / "b") & 077, 0u);
  EXPECT_TRUE(query_node(endpoint, {{"cmd", "status"}}, 2000ms).answered);
}

// A socket file that a killed node left behind is reported as such at once; before, the client
// waited out its whole timeout and said only that no reply came.
TEST_F(ControlSocketPlace, AStaleSocketFileIsReportedAtOnce) {
  const std::string endpoint = "ipc://" + (dir_ / "n0.sock").string();
  serve(endpoint);
  server_.reset();  // a clean exit removes the file; a killed node would not
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    const std::string path = (dir_ / "n0.sock").string();
    std::memcpy(address.sun_path, path.c_str(), path.size());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
    ::close(fd);  // bound, never listened, closed: what a SIGKILL leaves
  }
  const auto start = std::chrono::steady_clock::now();
  const ControlResult result = query_node(endpoint, {{"cmd", "status"}}, 5000ms);
  EXPECT_FALSE(result.answered);
  EXPECT_NE(result.error.find("nothing listens on " + (dir_ / "n0.sock").string()), std::string::npos)
      << result.error;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
}

// The handler runs only once start() is called: a handler replies through its owner's pointer
// to the server, which the owner has only after the constructor returns. starlingd's nodes
// once crashed (SIGSEGV, right after their first log line) when a status request came in that
// window. Here a request sent before start() waits, and is answered after it.
TEST_F(ControlSocketPlace, NoRequestIsHandledBeforeStart) {
  const std::string endpoint = "ipc://" + (dir_ / "n0.sock").string();
  std::atomic<int> handled{0};
  ControlServer* published = nullptr;
  auto server = std::make_unique<ControlServer>(endpoint, [&](const ControlRequest&, ReplyToken token) {
    ++handled;
    published->reply(token, ok_reply(nlohmann::json::object()));  // null before start() would crash
  });
  auto answer = std::async(std::launch::async,
                           [&] { return query_node(endpoint, {{"cmd", "status"}}, 5000ms); });
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(handled.load(), 0) << "the handler ran before start()";
  published = server.get();
  server->start();
  EXPECT_TRUE(answer.get().answered);
  EXPECT_EQ(handled.load(), 1);
}

TEST_F(ControlSocketPlace, StarlingsOwnRuntimeDirectoryIsMadePrivate) {
  const char* before = std::getenv("RUNTIME_DIRECTORY");
  const std::string saved = before ? before : "";
  ::setenv("RUNTIME_DIRECTORY", (dir_ / "run").c_str(), 1);
  fs::create_directory(dir_ / "run");
  ASSERT_EQ(::chmod((dir_ / "run").c_str(), 0755), 0);
  serve("ipc://" + (runtime_directory() / "x-n0.sock").string());
  EXPECT_EQ(mode_of(dir_ / "run"), 0700u);
  server_.reset();
  // A runtime directory that does not exist yet is created private.
  ::setenv("RUNTIME_DIRECTORY", (dir_ / "fresh" / "starling").c_str(), 1);
  serve("ipc://" + (runtime_directory() / "x-n0.sock").string());
  EXPECT_EQ(mode_of(dir_ / "fresh" / "starling"), 0700u);
  server_.reset();
  if (before) ::setenv("RUNTIME_DIRECTORY", saved.c_str(), 1); else ::unsetenv("RUNTIME_DIRECTORY");
}

}  // namespace
}  // namespace starling::daemon
