// upgrade_recovery=phase1: on a command line, and kept in a boot entry.
#include "recovery_karg.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sys/stat.h>

using namespace ur;
namespace fs = std::filesystem;

TEST_CASE("a command line asks for phase 1 only with the whole argument")
{
    CHECK(cmdline_requests_recovery("BOOT_IMAGE=/vmlinuz root=UUID=x upgrade_recovery=phase1 quiet\n"));
    CHECK(cmdline_requests_recovery("upgrade_recovery=phase1"));
    CHECK(cmdline_requests_recovery("a\tupgrade_recovery=phase1\tb"));
    CHECK_FALSE(cmdline_requests_recovery("upgrade_recovery=phase10 x"));
    CHECK_FALSE(cmdline_requests_recovery("xupgrade_recovery=phase1"));
    CHECK_FALSE(cmdline_requests_recovery("upgrade_recovery=off"));
    CHECK_FALSE(cmdline_requests_recovery(""));
}

namespace
{
// /boot as ostree lays it out: loader -> loader.1, entries in BLS files.
struct BootTree {
    test::TempDir tmp;
    std::string entries;
    BootTree()
    {
        entries = tmp.path + "/boot/loader.1/entries";
        fs::create_directories(entries);
        fs::create_directory_symlink("loader.1", tmp.path + "/boot/loader");
    }
    void entry(const std::string& name, const std::string& options) const
    {
        std::ofstream(entries + "/" + name) << "title Red Hat Enterprise Linux CoreOS 416\n"
                                               "version 2\n"
                                               "linux /ostree/rhcos-abc/vmlinuz\n"
                                            << options << "\n";
    }
};
} // namespace

TEST_CASE("boot entries that keep upgrade_recovery=phase1 are named, and said how to remove")
{
    BootTree b;
    SECTION("no /boot at all: nothing to say")
    {
        test::TempDir empty;
        auto r = boot_entries_requesting_recovery(empty.path);
        REQUIRE(r);
        CHECK(r->empty());
        CHECK(persistent_karg_warning(empty.path).empty());
    }
    SECTION("entries without it, or with it only in the title or a comment")
    {
        b.entry("ostree-1-rhcos.conf", "options root=UUID=1 rw ostree=/ostree/boot.1/rhcos/abc/0");
        b.entry("ostree-2-rhcos.conf", "# options upgrade_recovery=phase1\noptions root=UUID=1 upgrade_recovery=off");
        std::ofstream(b.entries + "/notes.txt") << "options upgrade_recovery=phase1\n"; // not an entry
        auto r = boot_entries_requesting_recovery(b.tmp.path);
        REQUIRE(r);
        CHECK(r->empty());
        CHECK(persistent_karg_warning(b.tmp.path).empty());
    }
    SECTION("kept in one entry, on a second options line")
    {
        b.entry("ostree-1-rhcos.conf", "options root=UUID=1 rw");
        b.entry("ostree-2-rhcos.conf", "options root=UUID=1 rw\n  options\tquiet upgrade_recovery=phase1");
        auto r = boot_entries_requesting_recovery(b.tmp.path);
        REQUIRE(r);
        REQUIRE(r->size() == 1);
        CHECK(r->front() == "/boot/loader/entries/ostree-2-rhcos.conf");
        auto w = persistent_karg_warning(b.tmp.path);
        CHECK_THAT(w, Catch::Contains("boot entry /boot/loader/entries/ostree-2-rhcos.conf:") &&
                          Catch::Contains("restores the latest backup") &&
                          Catch::Contains("from the options line of each entry named"));
    }
    SECTION("kept in both: both named, in order")
    {
        b.entry("ostree-2-rhcos.conf", "options upgrade_recovery=phase1");
        b.entry("ostree-1-rhcos.conf", "options root=UUID=1 upgrade_recovery=phase1");
        auto r = boot_entries_requesting_recovery(b.tmp.path);
        REQUIRE(r);
        CHECK(*r == std::vector<std::string>{"/boot/loader/entries/ostree-1-rhcos.conf",
                                             "/boot/loader/entries/ostree-2-rhcos.conf"});
        CHECK_THAT(persistent_karg_warning(b.tmp.path),
                   Catch::Contains("boot entries /boot/loader/entries/ostree-1-rhcos.conf, "
                                   "/boot/loader/entries/ostree-2-rhcos.conf:"));
    }
    SECTION("entries that cannot be read: said, not taken for none")
    {
        b.entry("ostree-1-rhcos.conf", "options upgrade_recovery=phase1");
        fs::remove(b.entries + "/ostree-1-rhcos.conf");
        fs::create_directory(b.entries + "/ostree-1-rhcos.conf"); // a directory named like an entry
        CHECK_FALSE(boot_entries_requesting_recovery(b.tmp.path));
        CHECK_THAT(persistent_karg_warning(b.tmp.path), Catch::Contains("cannot be told"));
    }
}
