#include "utf8_text.hpp"

#include <catch2/catch.hpp>

using ur::valid_utf8;

namespace
{
const std::string R = "\xEF\xBF\xBD"; // U+FFFD
}

TEST_CASE("valid UTF-8 comes back unchanged")
{
    for (std::string s :
         {std::string(""), std::string("etc/hosts"), std::string("caf\xC3\xA9"), std::string("\xE2\x82\xAC 1"),
          std::string("\xF0\x9F\x98\x80"), std::string("\xF4\x8F\xBF\xBF"), std::string("\xED\x9F\xBF")})
        CHECK(valid_utf8(s) == s);
}

TEST_CASE("each byte outside a well-formed sequence becomes U+FFFD")
{
    CHECK(valid_utf8("a\xFF\xFE"
                     "b") == "a" + R + R + "b");            // not UTF-8 at all
    CHECK(valid_utf8("\x80x") == R + "x");                  // stray continuation byte
    CHECK(valid_utf8("\xC3") == R);                         // truncated at the end
    CHECK(valid_utf8("\xE2\x82x") == R + R + "x");          // truncated in the middle
    CHECK(valid_utf8("\xC0\x80") == R + R);                 // overlong NUL
    CHECK(valid_utf8("\xE0\x9F\xBF") == R + R + R);         // overlong three-byte form
    CHECK(valid_utf8("\xED\xA0\x80") == R + R + R);         // a UTF-16 surrogate
    CHECK(valid_utf8("\xF4\x90\x80\x80") == R + R + R + R); // above U+10FFFF
    CHECK(valid_utf8("\xF5\x80") == R + R);                 // lead bytes that never occur
    CHECK(valid_utf8("ok\xC3\xA9\xFF\xC3\xA9") == "ok\xC3\xA9" + R + "\xC3\xA9");
}

TEST_CASE("printable: terminal controls and stray bytes become \\xHH, other UTF-8 stays")
{
    using ur::printable;
    using ur::printable_lines;
    CHECK(printable("etc/caf\xC3\xA9 \xE2\x82\xAC") == "etc/caf\xC3\xA9 \xE2\x82\xAC");
    CHECK(printable("\x1b]0;owned\x07\x1b[2J") == "\\x1b]0;owned\\x07\\x1b[2J"); // title, clear screen
    CHECK(printable("a\nb\rc\td\x7f") == "a\\x0ab\\x0dc\\x09d\\x7f");
    CHECK(printable("back\\slash") == "back\\x5cslash"); // unambiguous: \x.. always means an escape
    CHECK(printable("\xC2\x9B"
                    "31m") == "\\xc2\\x9b31m"); // C1 CSI, UTF-8 encoded
    CHECK(printable("\x9B"
                    "31m") == "\\x9b31m");          // C1 CSI as a raw byte (not UTF-8)
    CHECK(printable("\xC2\xA0") == "\xC2\xA0");     // U+00A0 is printable
    CHECK(printable("x\xFF\xC3") == "x\\xff\\xc3"); // not UTF-8, truncated
    CHECK(printable_lines("one\ntwo\x1b[K\n") == "one\ntwo\\x1b[K\n");
}
