// The shared string helpers.
#include "text.hpp"

#include <catch2/catch.hpp>

using namespace ur;

TEST_CASE("join separates the items, and nothing else")
{
    CHECK(join({}, ", ").empty());
    CHECK(join({"a"}, ", ") == "a");
    CHECK(join({"a", "b", "c"}, ", ") == "a, b, c");
    CHECK(join({"x", "y"}, "; ") == "x; y");
}

TEST_CASE("trim removes blanks and line ends at both ends only")
{
    CHECK(trim("  active\n") == "active");
    CHECK(trim("\t\r\n id \r\n") == "id");
    CHECK(trim("a b\tc") == "a b\tc");
    CHECK(trim(" \n\t ").empty());
    CHECK(trim("").empty());
}
