#pragma once
// The sd_notify protocol (READY=1, STATUS=..., STOPPING=1, WATCHDOG=1) spoken directly: one
// datagram to the unix socket named by $NOTIFY_SOCKET. No libsystemd needed; a no-op when the
// daemon is not run by systemd.
#include <chrono>
#include <optional>
#include <string>

namespace starling::daemon {

// Returns false when there is no NOTIFY_SOCKET or the send failed (never throws).
bool systemd_notify(const std::string& state);

// WATCHDOG_USEC, if systemd asked for keep-alives (and WATCHDOG_PID is us or unset).
std::optional<std::chrono::microseconds> systemd_watchdog_interval();

}  // namespace starling::daemon
