// JSON text of values whose strings may hold any bytes: file names, and messages
// that quote them. nlohmann::json throws on invalid UTF-8 when it writes; here
// such bytes become U+FFFD, so a name a host may legally have never aborts a
// command or loses a record.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace ur
{

inline std::string json_text(const nlohmann::json& j, int indent = -1)
{
    return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace ur
