#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "daemon/systemd_notify.h"

namespace starling::daemon {
namespace {

TEST(SystemdNotify, SendsOneDatagramToNotifySocket) {
  auto path = std::filesystem::temp_directory_path() / ("starling-notify-" + std::to_string(::getpid()));
  std::filesystem::remove(path);
  int fd = ::socket(AF_UNIX, SOCK_DGRAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  EXPECT_TRUE(systemd_notify("READY=1\nSTATUS=ok"));
  char buffer[64] = {};
  ssize_t n = ::recv(fd, buffer, sizeof buffer - 1, MSG_DONTWAIT);
  EXPECT_EQ(std::string(buffer, n > 0 ? static_cast<std::size_t>(n) : 0), "READY=1\nSTATUS=ok");
  ::unsetenv("NOTIFY_SOCKET");
  EXPECT_FALSE(systemd_notify("READY=1"));  // not under systemd: a quiet no-op
  ::close(fd);
  std::filesystem::remove(path);
}

TEST(SystemdNotify, WatchdogIntervalComesFromTheEnvironment) {
  ::unsetenv("WATCHDOG_USEC");
  EXPECT_FALSE(systemd_watchdog_interval().has_value());
  ::setenv("WATCHDOG_USEC", "3000000", 1);
  ::unsetenv("WATCHDOG_PID");
  ASSERT_TRUE(systemd_watchdog_interval().has_value());
  EXPECT_EQ(systemd_watchdog_interval()->count(), 3000000);
  ::setenv("WATCHDOG_PID", "1", 1);  // meant for another process
  EXPECT_FALSE(systemd_watchdog_interval().has_value());
  ::unsetenv("WATCHDOG_USEC");
  ::unsetenv("WATCHDOG_PID");
}

}  // namespace
}  // namespace starling::daemon
