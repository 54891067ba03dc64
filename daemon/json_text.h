#pragma once
// JSON text for what the daemon writes and sends: metrics lines, control replies, starlingctl's
// --json output. nlohmann::json::dump() throws on a string that is not UTF-8, and Linux paths
// are bytes: a run directory given on the command line with one byte outside UTF-8 made every
// line naming a checkpoint throw (the node then reported its final checkpoint as not written
// and failed). Such bytes become U+FFFD here instead; everything else is dump() unchanged.
#include <nlohmann/json.hpp>
#include <string>

namespace starling::daemon {

inline std::string json_text(const nlohmann::json& value, int indent = -1) {
  return value.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace starling::daemon
