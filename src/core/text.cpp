#include "text.hpp"

#include <cctype>
#include <cstdio>
#include <cstring>

namespace ur
{

std::string join(const std::vector<std::string>& v, std::string_view sep)
{
    std::string out;
    for (const auto& s : v) {
        if (!out.empty()) out += sep;
        out += s;
    }
    return out;
}

std::vector<std::string_view> split_lines(std::string_view text)
{
    std::vector<std::string_view> out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        out.push_back(text.substr(pos, nl - pos));
        pos = nl + 1;
    }
    return out;
}

std::string_view trim(std::string_view s)
{
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return {};
    return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

std::string sh_quote(const std::string& s)
{
    std::string q = "'";
    for (char c : s) {
        if (c == '\'')
            q += "'\\''";
        else
            q += c;
    }
    return q + "'";
}

std::string sh_word(const std::string& s)
{
    if (s.empty()) return "''";
    for (unsigned char c : s)
        if (!std::isalnum(c) && !std::strchr("-_./:=@%+,", c)) return sh_quote(s);
    return s;
}

std::string sh_command(const std::vector<std::string>& argv)
{
    std::string s;
    for (const auto& a : argv)
        s += (s.empty() ? "" : " ") + sh_word(a);
    return s;
}

std::string human_size(uint64_t b)
{
    char buf[32];
    if (b >= (1ull << 30))
        snprintf(buf, sizeof buf, "%.1f GiB", static_cast<double>(b) / (1ull << 30));
    else if (b >= (1ull << 20))
        snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(b) / (1ull << 20));
    else
        snprintf(buf, sizeof buf, "%.1f KiB", static_cast<double>(b) / 1024.0);
    return buf;
}

} // namespace ur
