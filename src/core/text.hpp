// Small string helpers shared by the modules that print lists or read line-based
// command output and files.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ur
{

// The items of `v` separated by `sep`: join({"a", "b"}, ", ") == "a, b".
std::string join(const std::vector<std::string>& v, std::string_view sep);

// The lines of `text`, without their line feeds; a last line without one counts,
// an empty one after the last line feed does not: "a\n\nb\n" -> {"a", "", "b"}.
std::vector<std::string_view> split_lines(std::string_view text);

// `s` without the spaces, tabs, carriage returns and line feeds at either end.
std::string_view trim(std::string_view s);

// `s` as one POSIX sh word in single quotes ('\'' for a quote inside).
std::string sh_quote(const std::string& s);
// `s` as one sh word, quoted only when it holds more than letters, digits and
// -_./:=@%+, (a command line printed for people to run).
std::string sh_word(const std::string& s);
// argv as one sh command line: its words by sh_word, separated by spaces.
std::string sh_command(const std::vector<std::string>& argv);

// A size for people: "512.0 KiB", "3.2 MiB", "1.5 GiB".
std::string human_size(uint64_t bytes);

} // namespace ur
