// Parsing the TOML data files we write ourselves (backups/<id>/metadata.toml, the
// watchdog file): a file that does not parse is damage (Corrupt), named with its
// line. The configuration has its own reader (config.cpp: BadConfig, line and column).
#pragma once

#include "error.hpp"

#include <string>
#include <string_view>
#include <toml++/toml.h>

namespace ur
{

inline Result<toml::table> parse_data_toml(std::string_view text, const std::string& name)
{
    try {
        return toml::parse(text, name);
    } catch (const toml::parse_error& e) {
        return fail(ErrorKind::Corrupt,
                    name + ":" + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
    }
}

} // namespace ur
