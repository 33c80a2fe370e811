// A test case that cannot run here (a tool or a privilege missing) says so and
// returns; Catch2 2.x has no SKIP. On CI (CI=true) it fails instead, so a CI
// machine that lacks the tool cannot pass the case without running it.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <string_view>

namespace ur::test
{

inline bool on_ci()
{
    const char* ci = std::getenv("CI");
    return ci && std::string_view(ci) == "true";
}

} // namespace ur::test

#define UR_RUN_ONLY_IF(cond, why)                                                                                      \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            if (ur::test::on_ci()) FAIL("not run on CI: " << why);                                                     \
            WARN("not run: " << why);                                                                                  \
            return;                                                                                                    \
        }                                                                                                              \
    } while (0)
