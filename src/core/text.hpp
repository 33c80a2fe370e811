// Small string helpers shared by the modules that print lists or read line-based
// command output and files.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ur
{

// The items of `v` separated by `sep`: join({"a", "b"}, ", ") == "a, b".
std::string join(const std::vector<std::string>& v, std::string_view sep);

// `s` without the spaces, tabs, carriage returns and line feeds at either end.
std::string_view trim(std::string_view s);

} // namespace ur
