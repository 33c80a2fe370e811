// A directory under /tmp for one test case, removed with all it holds.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace ur::test
{

struct TempDir {
    std::string path;
    explicit TempDir(const std::string& prefix = "ur-test")
    {
        std::string t = "/tmp/" + prefix + "-XXXXXX";
        REQUIRE(mkdtemp(t.data()));
        path = t;
    }
    ~TempDir()
    {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
};

} // namespace ur::test
