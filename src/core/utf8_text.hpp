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

// `s` for one line of human output on a terminal: control characters (C0, DEL, and
// C1 such as CSI, UTF-8 encoded or as a raw byte), backslash and bytes that are not
// UTF-8 become \xHH, one per byte; other UTF-8 stays. File names and damaged store
// files may hold anything, and raw they could move the cursor, recolour or retitle
// the terminal, or fake a line of output.
std::string printable(std::string_view s);
// The same for text of several lines: line feeds stay.
std::string printable_lines(std::string_view s);

} // namespace ur
