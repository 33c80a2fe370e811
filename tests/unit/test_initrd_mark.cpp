// The mark the initramfs leaves in /run, and what the booted host says without it.
#include "initrd_mark.hpp"
#include "temp_dir.hpp"

#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

using namespace ur;

TEST_CASE("the booted host warns until the initramfs left its mark, then not")
{
    test::TempDir tmp;
    const std::string run = tmp.path + "/run-upgrade-recovery"; // created by the mark
    auto w = initrd_module_warning(run);
    CHECK_THAT(w, Catch::Contains("did not run upgrade-recovery") && Catch::Contains(run + "/initrd") &&
                      Catch::Contains("90upgrade-recovery") && Catch::Contains("upgrade_recovery=off"));
    mark_initrd_ran(run, "1.2.3");
    CHECK(initrd_module_warning(run).empty());
    std::ifstream in(run + "/initrd");
    std::stringstream text;
    text << in.rdbuf();
    CHECK(text.str() == "upgrade-recovery 1.2.3\n");
    mark_initrd_ran(run, "1.2.4"); // every boot: written again, no error for the directory
    CHECK(initrd_module_warning(run).empty());
}

TEST_CASE("a mark that cannot be written is only logged")
{
    test::TempDir tmp;
    std::ofstream(tmp.path + "/file") << "x";
    mark_initrd_ran(tmp.path + "/file/sub", "1"); // ENOTDIR: no throw, no abort
    CHECK_FALSE(initrd_module_warning(tmp.path + "/file/sub").empty());
}

TEST_CASE("the problem is asked on the booted host only, or of a run dir given")
{
    test::TempDir tmp;
    const std::string run = tmp.path + "/run";
    // A tree under --root is not this boot: nothing to say about it.
    CHECK_FALSE(initrd_module_problem(tmp.path).has_value());
    // A run dir given (the daemon's --initrd-run-dir) is asked whatever the root.
    auto p = initrd_module_problem(tmp.path, run);
    REQUIRE(p.has_value());
    CHECK(*p == initrd_module_warning(run));
    mark_initrd_ran(run, "1");
    p = initrd_module_problem(tmp.path, run);
    REQUIRE(p.has_value());
    CHECK(p->empty());
}
