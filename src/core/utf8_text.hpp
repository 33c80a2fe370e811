// Text for channels that accept only valid UTF-8 (D-Bus strings, TOML): the bytes
// of file names a host may legally have become U+FFFD instead of making the whole
// message, property or signal fail.
#pragma once

#include <string>
#include <string_view>

namespace ur
{

// `s` with every byte that is not part of a well-formed UTF-8 sequence (stray
// continuation bytes, truncated or overlong sequences, surrogates, code points
// above U+10FFFF) replaced by U+FFFD. Valid input comes back unchanged.
std::string valid_utf8(std::string_view s);

} // namespace ur
