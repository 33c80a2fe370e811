#include "config.hpp"

#include <catch2/catch.hpp>

using namespace ur;

TEST_CASE("defaults need no file")
{
    auto c = parse_config_text(Config{}, "", "empty.toml");
    REQUIRE(c);
    CHECK(c->partition_label == "recovery");
    CHECK(c->mount_point == "/var/recovery");
    CHECK(c->trees.size() == 3);
    CHECK(c->tree("kubelet")->path == "/var/lib/kubelet");
    CHECK_FALSE(c->allow_plain_directory);
}
