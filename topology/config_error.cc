#include "topology/config_error.h"

#include <sstream>

namespace starling::topology {
namespace {
std::string format(const std::string& file, int line, int column, const std::string& field,
                   const std::string& message) {
  std::ostringstream out;
  if (!file.empty()) {  // errors about no file at all have no file to name
    out << file;
    if (line > 0) {
      out << ':' << line;
      if (column > 0) out << ':' << column;
    }
    out << ": ";
  }
  if (!field.empty()) out << field << ": ";
  out << message;
  return out.str();
}
}  // namespace

ConfigError::ConfigError(std::string file, int line, int column, std::string field,
                         std::string message)
    : std::runtime_error(format(file, line, column, field, message)),
      file_(std::move(file)),
      line_(line),
      column_(column),
      field_(std::move(field)),
      message_(std::move(message)) {}

}  // namespace starling::topology
