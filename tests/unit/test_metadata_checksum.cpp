// metadata.toml ends with a checksum line over everything before it: a file cut
// short (a whole [[trees]] table can go and still parse) or edited (a tree's path
// steers restore and the deletion of what the backup lacks) is Corrupt.
#include "metadata.hpp"

#include <catch2/catch.hpp>

#include <string>

using namespace ur;

namespace
{

BackupMetadata sample()
{
    BackupMetadata m;
    m.id = "20260101T000000Z";
    m.created = "2026-01-01T00:00:00Z";
    m.host = "sno-1";
    m.tool_version = "test";
    m.manifest_sha256 = std::string(64, 'a');
    m.manifest_entries = 3;
    m.trees.push_back({"etc", "/etc", 2, 10, {}});
    m.trees.push_back({"kubelet", "/var/lib/kubelet", 1, 5, {"pods/*/volumes"}});
    return m;
}

bool corrupt(const std::string& text)
{
    auto r = metadata_from_toml(text, "metadata.toml");
    return !r && r.error().kind == ErrorKind::Corrupt;
}

} // namespace

TEST_CASE("metadata round trips and ends with its checksum line", "[metadata]")
{
    std::string text = metadata_to_toml(sample());
    auto r = metadata_from_toml(text, "metadata.toml");
    REQUIRE(r);
    CHECK(r->id == "20260101T000000Z");
    REQUIRE(r->trees.size() == 2);
    CHECK(r->trees[1].path == "/var/lib/kubelet");
    CHECK(text.substr(text.rfind('\n', text.size() - 2) + 1, 9) == "# sha256 ");
}

TEST_CASE("metadata cut short at any byte is Corrupt", "[metadata]")
{
    std::string text = metadata_to_toml(sample());
    for (size_t n = 0; n < text.size(); n++) {
        INFO("cut at " << n << " of " << text.size());
        CHECK(corrupt(text.substr(0, n)));
    }
}

TEST_CASE("metadata with a changed byte, a dropped tree or no checksum line is Corrupt", "[metadata]")
{
    const std::string text = metadata_to_toml(sample());
    const size_t body_end = text.rfind("# sha256 ");

    SECTION("every byte of the body changed in turn")
    {
        for (size_t i = 0; i < body_end; i++) {
            std::string t = text;
            t[i] = static_cast<char>(t[i] ^ 0x01);
            INFO("byte " << i);
            CHECK(corrupt(t));
        }
    }
    SECTION("a tree's path edited: still valid TOML")
    {
        std::string t = text;
        size_t at = t.find("'/var/lib/kubelet'");
        if (at == std::string::npos) at = t.find("\"/var/lib/kubelet\"");
        REQUIRE(at != std::string::npos);
        t.replace(at + 1, 16, "/var/lib/kubele/");
        auto r = metadata_from_toml(t, "metadata.toml");
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::Corrupt);
        CHECK(r.error().message.find("does not match its checksum line") != std::string::npos);
    }
    SECTION("the checksum line removed: the body alone is valid TOML")
    {
        auto r = metadata_from_toml(text.substr(0, body_end), "metadata.toml");
        REQUIRE_FALSE(r);
        CHECK(r.error().kind == ErrorKind::Corrupt);
        CHECK(r.error().message.find("no checksum line") != std::string::npos);
    }
    SECTION("a line added after the checksum line")
    {
        CHECK(corrupt(text + "[extra]\n"));
    }
}

TEST_CASE("format 1 metadata, written before the checksum line, is still read", "[metadata]")
{
    // A backup taken by an older upgrade-recovery may be recovered by a newer one
    // (the failed upgrade can bring it): its metadata has no checksum line.
    std::string text = metadata_to_toml(sample());
    text.resize(text.rfind("# sha256 "));
    auto at = text.find("format = 2");
    REQUIRE(at != std::string::npos);
    text.replace(at, 10, "format = 1");
    auto r = metadata_from_toml(text, "metadata.toml");
    REQUIRE(r);
    CHECK(r->format == 1);
    REQUIRE(r->trees.size() == 2);
    // Written again (it never is: metadata is written once), it would be format 2.
    CHECK(metadata_to_toml(*r).find("format = 2") != std::string::npos);
}
