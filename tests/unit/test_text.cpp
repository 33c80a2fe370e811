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

TEST_CASE("sh_quote and sh_word make one sh word")
{
    CHECK(sh_quote("a b") == "'a b'");
    CHECK(sh_quote("it's") == "'it'\\''s'");
    CHECK(sh_quote("") == "''");
    // Printed commands stay readable: plain paths and options are left as they are.
    CHECK(sh_word("/usr/local/bin/cluster-restore.sh") == "/usr/local/bin/cluster-restore.sh");
    CHECK(sh_word("--request-timeout=30s") == "--request-timeout=30s");
    CHECK(sh_word("") == "''");
    CHECK(sh_word("/tmp/a dir") == "'/tmp/a dir'");
    CHECK(sh_word("{\"spec\":{}}") == "'{\"spec\":{}}'");
    CHECK(sh_word("$HOME") == "'$HOME'");
}

TEST_CASE("sh_command joins the argv's sh words with spaces")
{
    CHECK(sh_command({}).empty());
    CHECK(sh_command({"systemctl", "start", "crio.service"}) == "systemctl start crio.service");
    CHECK(sh_command({"oc", "patch", "-p", R"({"spec":{}})"}) == R"(oc patch -p '{"spec":{}}')");
    CHECK(sh_command({"a b", ""}) == "'a b' ''");
}

TEST_CASE("split_lines: the lines without their line feeds, the last one without one too")
{
    using V = std::vector<std::string_view>;
    CHECK(split_lines("") == V{});
    CHECK(split_lines("a") == V{"a"});
    CHECK(split_lines("a\n") == V{"a"});
    CHECK(split_lines("a\n\nb\n") == V{"a", "", "b"});
    CHECK(split_lines("\n") == V{""});
    CHECK(split_lines("a\r\nb") == V{"a\r", "b"}); // carriage returns are the caller's
}
