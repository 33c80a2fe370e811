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
