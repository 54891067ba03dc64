#pragma once
// FileDescriptor: owns a POSIX file descriptor and closes it when it goes. No LibTorch: the
// daemon's own files (the metrics log, the node directory's lock) use it too. Where closing
// can fail in a way that matters (after writing a checkpoint), release() it and check close().
#include <unistd.h>

#include <utility>

namespace starling::training {

class FileDescriptor {
 public:
  FileDescriptor() = default;
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_ = -1;
};

}  // namespace starling::training
