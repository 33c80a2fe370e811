// The manifest format: field escaping, entry round trips with nasty names and
// binary xattrs, the streamed writer/reader with its trailer and digest, every
// kind of damage a reader must call Corrupt, and the walk order compare_paths.
#include "manifest.hpp"

#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

using namespace ur;
using ur::test::TempDir;
namespace fs = std::filesystem;

namespace
{

std::string bytes(std::initializer_list<int> b)
{
    std::string s;
    for (int c : b)
        s += static_cast<char>(c);
    return s;
}

void require_same(const Entry& a, const Entry& b)
{
    CHECK(a.path == b.path);
    CHECK(a.type == b.type);
    CHECK(a.mode == b.mode);
    CHECK(a.uid == b.uid);
    CHECK(a.gid == b.gid);
    CHECK(a.size == b.size);
    CHECK(a.mtime_sec == b.mtime_sec);
    CHECK(a.mtime_nsec == b.mtime_nsec);
    CHECK(a.rdev == b.rdev);
    CHECK(a.ino == b.ino);
    CHECK(a.ctime_sec == b.ctime_sec);
    CHECK(a.ctime_nsec == b.ctime_nsec);
    CHECK(a.flags == b.flags);
    CHECK(a.digest == b.digest);
    CHECK(a.link == b.link);
    CHECK(a.xattrs == b.xattrs);
    CHECK(a.target == b.target);
}

const std::string kDigest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// A set of entries covering every field and every awkward value.
std::vector<Entry> nasty_entries()
{
    std::vector<Entry> v;
    Entry root;
    root.path = "etc";
    root.type = FileType::Dir;
    root.mode = 0755;
    root.mtime_sec = 1700000000;
    root.mtime_nsec = 123456789;
    root.xattrs = {{"security.selinux", std::string("system_u:object_r:etc_t:s0") + '\0'}};
    v.push_back(root);

    Entry f;
    f.path = "etc/with space/new\nline\ttab";
    f.type = FileType::Reg;
    f.mode = 07777;
    f.uid = 4294967295u;
    f.gid = 65534;
    f.size = 18446744073709551615ull;
    f.mtime_sec = -2; // before 1970, with nanoseconds
    f.mtime_nsec = 999999999;
    f.ino = 18446744073709551615ull;
    f.ctime_sec = 4102444800; // 2100
    f.ctime_nsec = 1;
    f.flags = kChangedDuringCopy | kLinkLeader;
    f.digest = kDigest;
    f.xattrs = {
        {"security.selinux", "system_u:object_r:etc_t:s0"},
        {"system.posix_acl_access", bytes({2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 0, 0x2c, 0x3d, 0x25, 0x20})},
        {"user.empty", ""},
        {"user.dash", "-"},
        {"user.with,comma=eq%pct space", "v,=%\n"},
    };
    v.push_back(f);

    Entry nonutf;
    nonutf.path = "etc/" + bytes({0xff, 0xfe, 0x80, 0x01, 0x7f}) + "%41";
    nonutf.type = FileType::Reg;
    nonutf.mode = 0644;
    nonutf.link = "etc/with space/new\nline\ttab"; // follower of a hard-link group
    nonutf.digest = kDigest;
    v.push_back(nonutf);

    Entry dash;
    dash.path = "etc/-";
    dash.type = FileType::Link;
    dash.mode = 0777;
    dash.target = "-"; // must not read back as "no target"
    dash.size = 1;
    v.push_back(dash);

    Entry spaces;
    spaces.path = "etc/link to";
    spaces.type = FileType::Link;
    spaces.mode = 0777;
    spaces.target = "/abs/target with spaces/and,comma=eq";
    spaces.size = spaces.target.size();
    v.push_back(spaces);

    Entry dev;
    dev.path = "etc/null";
    dev.type = FileType::Chr;
    dev.mode = 0666;
    dev.rdev = (1ull << 40) | 3;
    v.push_back(dev);

    Entry blk;
    blk.path = "etc/blk";
    blk.type = FileType::Blk;
    blk.mode = 0600;
    blk.rdev = 0x0801;
    v.push_back(blk);

    Entry fifo;
    fifo.path = "etc/fifo";
    fifo.type = FileType::Fifo;
    fifo.mode = 01600;
    v.push_back(fifo);

    Entry sock;
    sock.path = "etc/sock";
    sock.type = FileType::Sock;
    sock.mode = 0755;
    sock.flags = kMountPoint;
    v.push_back(sock);

    Entry empty_x;
    empty_x.path = "etc/x";
    empty_x.type = FileType::Reg;
    empty_x.xattrs = {{"user.a", ""}, {"user.b", ""}};
    v.push_back(empty_x);
    return v;
}

std::string write_manifest(const std::string& dir, const std::string& name, const std::vector<Entry>& entries,
                           std::string* sha = nullptr)
{
    std::string p = dir + "/" + name;
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    ManifestWriter w(fd);
    for (const auto& e : entries)
        REQUIRE(w.add(e));
    CHECK(w.count() == entries.size());
    auto s = w.finish();
    REQUIRE(s);
    CHECK(s->size() == 64);
    if (sha) *sha = *s;
    return p;
}

std::string slurp(const std::string& p)
{
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void put(const std::string& p, const std::string& data)
{
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out << data;
}

// Read a manifest to the end: the entries, or the first error.
struct ReadAll {
    std::vector<Entry> entries;
    std::optional<Error> error;
    std::string sha;
};

ReadAll read_all(const std::string& dir, const std::string& name)
{
    ReadAll r;
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    REQUIRE(dfd >= 0);
    auto rd = ManifestReader::open(dfd, name);
    ::close(dfd);
    if (!rd) {
        r.error = rd.error();
        return r;
    }
    for (;;) {
        auto n = rd->next();
        if (!n) {
            r.error = n.error();
            return r;
        }
        if (!*n) break;
        r.entries.push_back(std::move(**n));
    }
    r.sha = rd->sha256();
    // After the end, next() keeps saying "end".
    auto again = rd->next();
    REQUIRE(again);
    CHECK(!*again);
    return r;
}

} // namespace

TEST_CASE("escape_field round-trips every byte and marks the empty field", "[manifest]")
{
    CHECK(escape_field("") == "-");
    CHECK(escape_field("-") == "%2D");
    CHECK(escape_field("a b") == "a%20b");
    CHECK(escape_field("%,=") == "%25%2C%3D");
    CHECK(escape_field(bytes({0x7f, 0x80, 0xff, 0x00, 0x21, 0x7e})) == "%7F%80%FF%00!~");
    std::string all;
    for (int c = 0; c < 256; c++)
        all += static_cast<char>(c);
    for (const std::string& s : {all, std::string("-"), std::string("--"), std::string(" "), std::string("%"),
                                 std::string("a-"), std::string(4096, 'x')}) {
        std::string e = escape_field(s);
        // Escaped fields never hold the separators of the line format.
        CHECK(e.find(' ') == std::string::npos);
        CHECK(e.find('\n') == std::string::npos);
        CHECK(e.find(',') == std::string::npos);
        CHECK(e.find('=') == std::string::npos);
        auto u = unescape_field(e);
        REQUIRE(u);
        CHECK(*u == s);
    }
    auto empty = unescape_field("-");
    REQUIRE(empty);
    CHECK(empty->empty());
    CHECK(unescape_field("%41%42c") == std::string("ABc"));
    CHECK(unescape_field("%4a") == std::string("J")); // lower-case hex is read too
}

TEST_CASE("unescape_field rejects broken escapes as Corrupt", "[manifest]")
{
    for (const char* bad : {"%", "%4", "a%", "a%4", "%G0", "%0G", "%%", "x%zz"}) {
        INFO(bad);
        auto u = unescape_field(bad);
        REQUIRE(!u);
        CHECK(u.error().kind == ErrorKind::Corrupt);
    }
}

TEST_CASE("format_entry / parse_entry round trip with nasty names, binary and empty xattrs", "[manifest]")
{
    for (const auto& e : nasty_entries()) {
        std::string line = format_entry(e);
        INFO(line);
        REQUIRE(!line.empty());
        CHECK(line.back() == '\n');
        // One line, 15 space-separated fields, whatever the names hold.
        std::string body = line.substr(0, line.size() - 1);
        CHECK(body.find('\n') == std::string::npos);
        CHECK(std::count(body.begin(), body.end(), ' ') == 14);
        auto p = parse_entry(body);
        REQUIRE(p);
        require_same(e, *p);
        // Formatting the parsed entry gives the same bytes (a canonical form).
        CHECK(format_entry(*p) == line);
    }
}

TEST_CASE("format_entry writes the documented field layout", "[manifest]")
{
    Entry e;
    e.path = "etc/a b";
    e.type = FileType::Reg;
    e.mode = 04755;
    e.uid = 1;
    e.gid = 2;
    e.size = 3;
    e.mtime_sec = 4;
    e.mtime_nsec = 5;
    e.ino = 7;
    e.ctime_sec = 8;
    e.ctime_nsec = 9;
    e.flags = 4;
    e.digest = kDigest;
    e.xattrs = {{"user.k", "v"}, {"user.e", ""}};
    CHECK(format_entry(e) ==
          "etc/a%20b f 4755 1 2 3 4.000000005 0 7 8.000000009 4 " + kDigest + " - user.k=v,user.e=- -\n");
}

TEST_CASE("parse_entry rejects malformed lines as Corrupt", "[manifest]")
{
    Entry good;
    good.path = "etc/f";
    good.digest = kDigest;
    std::string line = format_entry(good);
    line.pop_back();
    REQUIRE(parse_entry(line));

    auto field_replaced = [&](int idx, const std::string& v) {
        std::vector<std::string> f;
        std::stringstream ss(line);
        for (std::string x; std::getline(ss, x, ' ');)
            f.push_back(x);
        REQUIRE(f.size() == 15);
        f[static_cast<size_t>(idx)] = v;
        std::string out;
        for (size_t i = 0; i < f.size(); i++)
            out += (i ? " " : "") + f[i];
        return out;
    };
    std::vector<std::string> bad = {
        "",
        line + " extra",
        line.substr(0, line.rfind(' ')), // 14 fields
        field_replaced(0, "-"),          // empty path
        field_replaced(0, "etc/%G1"),    // bad escape
        field_replaced(0, "etc/.."),     // paths that would lead restore out of the tree
        field_replaced(0, "etc/../x"),
        field_replaced(0, "./etc"),
        field_replaced(0, "/etc/f"),
        field_replaced(0, "etc//f"),
        field_replaced(0, "etc/"),
        field_replaced(1, "x"), // unknown type
        field_replaced(1, "ff"),
        field_replaced(2, "17777"), // mode beyond 07777
        field_replaced(2, "0648"),  // not octal
        field_replaced(3, "-1"),
        field_replaced(3, "4294967296"), // uid overflows 32 bits
        field_replaced(5, "12a"),
        field_replaced(6, "12"),           // time without nanoseconds
        field_replaced(6, "1.1000000000"), // nanoseconds >= 1e9
        field_replaced(11, "abc"),         // digest of the wrong length
        field_replaced(12, "%"),
        field_replaced(13, "user.a"), // xattr without '='
        field_replaced(13, "user.a=%Z0"),
        field_replaced(14, "%1"),
    };
    for (const auto& b : bad) {
        INFO(b);
        auto p = parse_entry(b);
        REQUIRE(!p);
        CHECK(p.error().kind == ErrorKind::Corrupt);
    }
}

TEST_CASE("ManifestWriter and ManifestReader round trip a file, with the same sha256", "[manifest]")
{
    TempDir t;
    auto entries = nasty_entries();
    std::string sha;
    std::string p = write_manifest(t.path, "manifest", entries, &sha);
    std::string text = slurp(p);
    CHECK(text.rfind("# upgrade-recovery manifest 1\n", 0) == 0);
    CHECK(text.size() > 20);
    const std::string trailer = "# end " + std::to_string(entries.size()) + "\n";
    CHECK(text.substr(text.size() - trailer.size()) == trailer);

    auto r = read_all(t.path, "manifest");
    REQUIRE(!r.error);
    REQUIRE(r.entries.size() == entries.size());
    for (size_t i = 0; i < entries.size(); i++)
        require_same(entries[i], r.entries[i]);
    CHECK(r.sha == sha);

    // The digest is of the file's bytes: an independent hash of the same bytes agrees.
    std::string cmd = "sha256sum '" + p + "' > '" + t.path + "/sum'";
    REQUIRE(std::system(cmd.c_str()) == 0);
    CHECK(slurp(t.path + "/sum").substr(0, 64) == sha);
}

TEST_CASE("an empty manifest and a large one (past the 1 MiB write buffer) round trip", "[manifest]")
{
    TempDir t;
    write_manifest(t.path, "empty", {});
    CHECK(slurp(t.path + "/empty") == "# upgrade-recovery manifest 1\n# end 0\n");
    auto r0 = read_all(t.path, "empty");
    REQUIRE(!r0.error);
    CHECK(r0.entries.empty());

    std::vector<Entry> many;
    for (int i = 0; i < 20000; i++) {
        Entry e;
        e.path = "kubelet/pods/" + std::to_string(i) + "/name with spaces " + std::string(40, 'x');
        e.type = FileType::Reg;
        e.size = static_cast<uint64_t>(i);
        e.digest = kDigest;
        many.push_back(e);
    }
    std::string sha;
    write_manifest(t.path, "many", many, &sha);
    REQUIRE(fs::file_size(t.path + "/many") > (1u << 20));
    auto r = read_all(t.path, "many");
    REQUIRE(!r.error);
    REQUIRE(r.entries.size() == many.size());
    CHECK(r.entries[12345].path == many[12345].path);
    CHECK(r.entries.back().size == 19999);
    CHECK(r.sha == sha);
}

TEST_CASE("a manifest truncated at any byte is Corrupt, never a shorter valid list", "[manifest]")
{
    TempDir t;
    auto entries = nasty_entries();
    std::string full = slurp(write_manifest(t.path, "manifest", entries));
    for (size_t len = 0; len < full.size(); len++) {
        put(t.path + "/cut", full.substr(0, len));
        auto r = read_all(t.path, "cut");
        INFO("truncated to " << len << " of " << full.size() << " bytes");
        REQUIRE(r.error);
        CHECK(r.error->kind == ErrorKind::Corrupt);
    }
}

TEST_CASE("bad header, bad trailer and data after the trailer are Corrupt", "[manifest]")
{
    TempDir t;
    auto entries = nasty_entries();
    std::string full = slurp(write_manifest(t.path, "manifest", entries));
    const std::string trailer = "# end " + std::to_string(entries.size()) + "\n";
    const std::string body = full.substr(0, full.size() - trailer.size());
    std::vector<std::pair<std::string, std::string>> cases = {
        {"wrong count", body + "# end " + std::to_string(entries.size() + 1) + "\n"},
        {"count too small", body + "# end " + std::to_string(entries.size() - 1) + "\n"},
        {"count not a number", body + "# end x\n"},
        {"count with junk", body + "# end " + std::to_string(entries.size()) + " \n"},
        {"no trailer", body},
        {"trailer without newline", body + "# end " + std::to_string(entries.size())},
        {"data after trailer", full + "etc/late f 0644 0 0 0 0.000000000 0 0 0.000000000 0 - - - -\n"},
        {"empty line after trailer", full + "\n"},
        {"header version 2", "# upgrade-recovery manifest 2\n" + full.substr(full.find('\n') + 1)},
        {"no header", full.substr(full.find('\n') + 1)},
        {"flipped field", body.substr(0, body.size() - 2) + "%\n" + trailer},
    };
    for (const auto& [what, text] : cases) {
        INFO(what);
        put(t.path + "/bad", text);
        auto r = read_all(t.path, "bad");
        REQUIRE(r.error);
        CHECK(r.error->kind == ErrorKind::Corrupt);
    }
    // The untouched file still reads.
    CHECK(!read_all(t.path, "manifest").error);
}

TEST_CASE("a missing manifest or a symlink in its place is Corrupt", "[manifest]")
{
    // A generation without its manifest is damaged (exit 7), not an I/O failure (exit 1).
    TempDir t;
    auto r = read_all(t.path, "nothing");
    REQUIRE(r.error);
    CHECK(r.error->err == ENOENT);
    CHECK(r.error->kind == ErrorKind::Corrupt);
    write_manifest(t.path, "real", nasty_entries());
    fs::create_symlink("real", t.path + "/link");
    auto l = read_all(t.path, "link");
    REQUIRE(l.error); // opened O_NOFOLLOW
    CHECK(l.error->kind == ErrorKind::Corrupt);
}

TEST_CASE("compare_paths: component order, '/' before every other byte, bytes unsigned", "[manifest]")
{
    // The examples from the format's contract.
    CHECK(compare_paths("a", "a/b") < 0);
    CHECK(compare_paths("a/b", "a-b") < 0);
    CHECK(compare_paths("a-b", "a0") < 0);
    CHECK(compare_paths("a", "a") == 0);
    CHECK(compare_paths("a/b", "a") > 0);
    CHECK(compare_paths("a0", "a-b") > 0);
    // A directory's whole subtree comes before its next sibling.
    CHECK(compare_paths("a/z/z/z", "a-") < 0);
    CHECK(compare_paths("a/b/c", "a/b-") < 0);
    CHECK(compare_paths("a/b", "a/b/c") < 0);
    CHECK(compare_paths("a/b/c", "a/c") < 0);
    // '/' sorts before bytes a name can hold, even control bytes and space.
    CHECK(compare_paths("a/x", std::string("a") + '\x01') < 0);
    CHECK(compare_paths("a/x", "a b") < 0);
    // Bytes compare unsigned: 0xff after ASCII.
    CHECK(compare_paths("a" + bytes({0xff}), "a0") > 0);
    CHECK(compare_paths("a" + bytes({0x80}), "a" + bytes({0x7f})) > 0);
    CHECK(compare_paths("", "a") < 0);

    // Sorting with it gives the walk order: each directory followed by its subtree.
    std::vector<std::string> v = {"a0", "a-b", "a/b/c", "a", "a/b", "a" + bytes({0xff}), "a/c", "a b", "a/b-c"};
    std::sort(v.begin(), v.end(), [](const auto& x, const auto& y) { return compare_paths(x, y) < 0; });
    std::vector<std::string> want = {"a", "a/b", "a/b/c", "a/b-c", "a/c", "a b", "a-b", "a0", "a" + bytes({0xff})};
    CHECK(v == want);
}

TEST_CASE("file types map to and from st_mode", "[manifest]")
{
    for (FileType t :
         {FileType::Dir, FileType::Reg, FileType::Link, FileType::Chr, FileType::Blk, FileType::Fifo, FileType::Sock}) {
        auto back = file_type_from_mode(file_type_to_mode(t) | 0644);
        REQUIRE(back);
        CHECK(*back == t);
    }
    CHECK(file_type_to_mode(FileType::Reg) == S_IFREG);
    CHECK(file_type_to_mode(FileType::Dir) == S_IFDIR);
    CHECK(!file_type_from_mode(0));
}
