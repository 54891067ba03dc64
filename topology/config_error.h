#pragma once
// ConfigError: an error in a cluster file, carrying where it is (file, line, column), which
// field it concerns, and a message that says what would be valid.
#include <stdexcept>
#include <string>

namespace starling::topology {

class ConfigError : public std::runtime_error {
 public:
  // line/column are 1-based; 0 means "not tied to a line" (e.g. a property of the whole graph).
  ConfigError(std::string file, int line, int column, std::string field, std::string message);

  const std::string& file() const noexcept { return file_; }
  int line() const noexcept { return line_; }
  int column() const noexcept { return column_; }
  const std::string& field() const noexcept { return field_; }
  const std::string& message() const noexcept { return message_; }

 private:
  std::string file_;
  int line_;
  int column_;
  std::string field_;
  std::string message_;
};

}  // namespace starling::topology
