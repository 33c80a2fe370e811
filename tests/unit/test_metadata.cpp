// backups/<id>/metadata.toml: what a backup writes reads back, and damage to it
// (wrong types, negative sizes and counts, tree names that are not a tree's own
// directory) is Corrupt, named with the file, line and key. The file itself
// (missing, a symlink, too large) is test_store's read_metadata. The checksum
// line at its end: a file cut short (a whole [[trees]] table can go and still
// parse) or edited (a tree's path steers restore and the deletion of what the
// backup lacks) is Corrupt.
#include "digest.hpp"
#include "metadata.hpp"

#include <catch2/catch.hpp>

#include <regex>

using namespace ur;

namespace
{

BackupMetadata sample()
{
    BackupMetadata m;
    m.id = "20240501T120000Z";
    m.created = "2024-05-01T12:00:00Z";
    m.host = "sno";
    m.machine_id = "0123456789abcdef0123456789abcdef";
    m.duration_seconds = 12.5;
    m.manifest_sha256 = std::string(64, 'a');
    m.manifest_entries = 1234;
    m.total_bytes = 5'000'000'000;
    m.copied_bytes = 100;
    m.shared_bytes = 4'999'999'900;
    m.shared_files = 1200;
    m.trees = {{"etc", "/etc", 1000, 4096, {"foo"}}, {"extras", "/", 2, 10, {}}};
    m.ostree.present = true;
    m.ostree.serial = 3;
    m.cluster.present = true;
    m.cluster.snapshot_size = 1 << 20;
    m.cluster.snapshot_hash = 4'000'000'000u;
    return m;
}

// `text` with its checksum line (if any) written again, as a writer that edits the
// file on purpose would: what is tested here is the reading of the content
// (test_metadata_checksum: the checksum line itself).
std::string resealed(std::string text)
{
    const size_t line_len = 9 + 64 + 1; // "# sha256 " <hex> "\n"
    if (text.size() >= line_len && text.compare(text.size() - line_len, 9, "# sha256 ") == 0)
        text.resize(text.size() - line_len);
    return text + "# sha256 " + sha256_hex(text.data(), text.size()) + "\n";
}

// The sample's TOML with the first match of `re` replaced (and resealed).
std::string edited(const std::string& re, const std::string& with)
{
    std::string text = metadata_to_toml(sample());
    std::string out = std::regex_replace(text, std::regex(re), with, std::regex_constants::format_first_only);
    REQUIRE(out != text);
    return resealed(out);
}

bool corrupt(const std::string& text)
{
    auto r = metadata_from_toml(text, "metadata.toml");
    return !r && r.error().kind == ErrorKind::Corrupt;
}

// Corrupt, and the message holds every one of `words`.
void check_corrupt(const std::string& text, std::initializer_list<std::string> words)
{
    auto m = metadata_from_toml(resealed(text), "/store/backups/X/metadata.toml");
    REQUIRE_FALSE(m);
    INFO(m.error().message);
    CHECK(m.error().kind == ErrorKind::Corrupt);
    CHECK(m.error().message.rfind("/store/backups/X/metadata.toml:", 0) == 0);
    for (const auto& w : words)
        CHECK(m.error().message.find(w) != std::string::npos);
}

} // namespace

TEST_CASE("metadata round trips, and an absent key reads as its default", "[metadata]")
{
    auto m = metadata_from_toml(metadata_to_toml(sample()), "metadata.toml");
    REQUIRE(m);
    CHECK(m->total_bytes == 5'000'000'000u);
    CHECK(m->cluster.snapshot_hash == 4'000'000'000u);
    CHECK(m->ostree.serial == 3);
    CHECK(m->duration_seconds == 12.5);
    CHECK(m->machine_id == "0123456789abcdef0123456789abcdef");
    REQUIRE(m->trees.size() == 2);
    CHECK(m->trees[1].name == "extras");
    CHECK(m->trees[0].exclude == std::vector<std::string>{"foo"});
    // Older backups lack newer keys.
    auto old = metadata_from_toml("format = 1\nid = \"20240501T120000Z\"\n", "metadata.toml");
    REQUIRE(old);
    CHECK(old->trees.empty());
    CHECK(old->machine_id.empty()); // not known: no identity check
    CHECK_FALSE(old->ostree.pinned_by_backup);
}

TEST_CASE("negative sizes and counts are Corrupt, naming the file, line and key", "[metadata]")
{
    // They went into unsigned fields and showed as 18446744073709551615.
    check_corrupt(edited("total_bytes = \\d+", "total_bytes = -1"), {"sizes.total_bytes", "negative"});
    check_corrupt(edited("shared_files = \\d+", "shared_files = -5"), {"sizes.shared_files", "-5"});
    check_corrupt(edited("entries = \\d+", "entries = -2"), {"manifest.entries", "negative"});
    check_corrupt(edited("files = 2\\b", "files = -2"), {"trees[1].files", "negative"});
    check_corrupt(edited("bytes = 4096", "bytes = -4096"), {"trees[0].bytes", "negative"});
    check_corrupt(edited("snapshot_size = \\d+", "snapshot_size = -1"), {"cluster.snapshot_size"});
    check_corrupt(edited("snapshot_hash = \\d+", "snapshot_hash = 4294967296"), {"cluster.snapshot_hash"});
    check_corrupt(edited("serial = 3", "serial = -1"), {"ostree.serial"});
    check_corrupt(edited("serial = 3", "serial = 4294967299"), {"ostree.serial"});
    check_corrupt(edited("duration_seconds = [0-9.]+", "duration_seconds = -3.0"), {"duration_seconds"});
    check_corrupt(edited("duration_seconds = [0-9.]+", "duration_seconds = nan"), {"duration_seconds"});
    // With the line: the file is a few hundred lines of the same keys.
    auto m = metadata_from_toml(edited("total_bytes = \\d+", "total_bytes = -1"), "f");
    REQUIRE_FALSE(m);
    CHECK(std::regex_search(m.error().message, std::regex("^f:[0-9]+: sizes.total_bytes")));
}

TEST_CASE("keys of the wrong type are Corrupt, not their default", "[metadata]")
{
    check_corrupt(edited("total_bytes = \\d+", "total_bytes = \"lots\""), {"sizes.total_bytes", "not an integer"});
    check_corrupt(edited("total_bytes = \\d+", "total_bytes = 1.5"), {"sizes.total_bytes", "not an integer"});
    check_corrupt(edited("format = 2", "format = \"2\""), {"format", "not an integer"});
    check_corrupt(edited("format = 2", "format = 4294967297"), {"format"});
    check_corrupt(edited("id = '[^']*'", "id = 7"), {"id", "not a string"});
    check_corrupt(edited("present = true", "present = 1"), {"present", "not a boolean"});
    check_corrupt(edited("warnings = \\[[^\\]]*\\]", "warnings = [ 1 ]"), {"warnings", "not a string"});
    check_corrupt("sizes = 3\n" + edited("\\[sizes\\]", "[x]"), {"sizes", "not a table"});
    // `trees` as a table, and an element of it that is not a table.
    check_corrupt("format = 1\nid = \"20240501T120000Z\"\n[trees]\nname = \"etc\"\n", {"trees", "not an array"});
    check_corrupt("format = 1\nid = \"20240501T120000Z\"\ntrees = [ 1 ]\n", {"trees[0]", "not a table"});
}

TEST_CASE("a tree named like the generation's own files, or not a plain name, is Corrupt", "[metadata]")
{
    // A tree's directory is backups/<id>/<name>: verify and restore open it by that name.
    for (const char* bad :
         {"manifest", "metadata.toml", "cluster", "", ".", "..", "../20240101T000000Z", "a/b", ".staging-x", "/etc"}) {
        INFO(bad);
        check_corrupt(edited("name = 'etc'", std::string("name = '") + bad + "'"), {"trees[0].name"});
    }
    check_corrupt(edited("name = 'extras'", "name = 'etc'"), {"trees[1].name", "twice"});
    check_corrupt(edited("path = '/etc'", "path = 'etc'"), {"trees[0].path", "not absolute"});
}

TEST_CASE("metadata round trips and ends with its checksum line", "[metadata]")
{
    std::string text = metadata_to_toml(sample());
    auto r = metadata_from_toml(text, "metadata.toml");
    REQUIRE(r);
    CHECK(r->id == "20240501T120000Z");
    REQUIRE(r->trees.size() == 2);
    CHECK(r->trees[0].path == "/etc");
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
        size_t at = t.find("path = '/etc'");
        REQUIRE(at != std::string::npos);
        t.replace(at + 8, 4, "/usr"); // the etc tree restored over /usr
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

TEST_CASE("the images a backup holds round trip; without them, and in older files, none", "[metadata]")
{
    BackupMetadata m = sample();
    CHECK_FALSE(metadata_from_toml(metadata_to_toml(m), "metadata.toml")->images.present);
    CHECK(metadata_to_toml(m).find("[images]") == std::string::npos); // older readers see nothing new
    m.images.present = true;
    m.images.files = 7;
    m.images.bytes = 4096;
    m.images.copied_bytes = 1024;
    m.images.missing = {"quay.io/x/kas@sha256:2"};
    m.images.held = {{"quay.io/x/etcd@sha256:1", std::string(64, 'c'), "sha256:" + std::string(64, 'd'), 3000, true}};
    auto r = metadata_from_toml(metadata_to_toml(m), "metadata.toml");
    INFO((r ? "" : r.error().message));
    REQUIRE(r);
    CHECK(r->images.present);
    CHECK(r->images.files == 7);
    CHECK(r->images.bytes == 4096);
    CHECK(r->images.copied_bytes == 1024);
    CHECK(r->images.missing == m.images.missing);
    REQUIRE(r->images.held.size() == 1);
    CHECK(r->images.held[0].ref == "quay.io/x/etcd@sha256:1");
    CHECK(r->images.held[0].tag == std::string(64, 'c'));
    CHECK(r->images.held[0].digest == "sha256:" + std::string(64, 'd'));
    CHECK(r->images.held[0].bytes == 3000);
    CHECK(r->images.held[0].shared);
    CHECK(r->images.find("quay.io/x/etcd@sha256:1") != nullptr);
    CHECK(r->images.find("quay.io/x/kas@sha256:2") == nullptr);
    // The tag goes into skopeo's oci: reference: only ours.
    m.images.held[0].tag = "../x:y";
    auto bad = metadata_from_toml(metadata_to_toml(m), "metadata.toml");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind == ErrorKind::Corrupt);
    CHECK(bad.error().message.find("images.held[0].tag") != std::string::npos);
    // An older backup may have a tree called images; one that holds images may not.
    BackupMetadata old = sample();
    old.trees[0].name = "images";
    CHECK(metadata_from_toml(metadata_to_toml(old), "metadata.toml"));
    old.images.present = true;
    auto clash = metadata_from_toml(metadata_to_toml(old), "metadata.toml");
    REQUIRE_FALSE(clash);
    CHECK(clash.error().message.find("a tree is called 'images' too") != std::string::npos);
}
