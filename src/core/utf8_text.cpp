#include "utf8_text.hpp"

#include <cstdio>

namespace ur
{

namespace
{

// Length of the well-formed sequence at s[i] (RFC 3629, Table 3-7 of Unicode), 0 if none.
size_t sequence_length(std::string_view s, size_t i)
{
    auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
    auto cont = [&](size_t k, unsigned lo = 0x80, unsigned hi = 0xBF) {
        return k < s.size() && at(k) >= lo && at(k) <= hi;
    };
    unsigned c = at(i);
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) return cont(i + 1) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF; // no overlongs, no surrogates
        return cont(i + 1, lo, hi) && cont(i + 2) ? 3 : 0;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF; // U+10000..U+10FFFF
        return cont(i + 1, lo, hi) && cont(i + 2) && cont(i + 3) ? 4 : 0;
    }
    return 0;
}

std::string escape_for_terminal(std::string_view s, bool keep_newlines)
{
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const size_t n = sequence_length(s, i);
        const bool c0 = n == 1 && (c < 0x20 || c == 0x7f || c == '\\') && !(keep_newlines && c == '\n');
        const bool c1 = n == 2 && c == 0xC2 && static_cast<unsigned char>(s[i + 1]) < 0xA0; // U+0080..U+009F
        if (n != 0 && !c0 && !c1) {
            out.append(s, i, n);
            i += n;
            continue;
        }
        for (const size_t end = i + (n ? n : 1); i < end; i++) {
            char b[8];
            snprintf(b, sizeof b, "\\x%02x", static_cast<unsigned char>(s[i]));
            out += b;
        }
    }
    return out;
}

} // namespace

std::string printable(std::string_view s)
{
    return escape_for_terminal(s, false);
}

std::string printable_lines(std::string_view s)
{
    return escape_for_terminal(s, true);
}

std::string valid_utf8(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        size_t n = sequence_length(s, i);
        if (n == 0) {
            out += "\xEF\xBF\xBD";
            i++;
        } else {
            out.append(s, i, n);
            i += n;
        }
    }
    return out;
}

} // namespace ur
