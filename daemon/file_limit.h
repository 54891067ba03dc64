#pragma once
// Both programs hold a file descriptor per connection: starlingd one per peer, client and
// scraper; starlingctl one per node it asks at once. The soft limit on open files (often 1024)
// is far below the hard one (systemd's default: 524,288).
namespace starling::daemon {

// Raises the soft limit on open files to the hard limit; does nothing if it cannot. Neither
// program uses select(), so descriptors above 1024 are safe.
void raise_open_file_limit();

}  // namespace starling::daemon
