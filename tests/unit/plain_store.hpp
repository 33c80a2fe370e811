// A Store over a plain directory, made by hand: the journal, the metadata and
// the delete/prune functions need only its directory fds, and this works where
// open_store cannot look for a partition (not root).
#pragma once

#include "store.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <filesystem>
#include <string>

namespace ur::test
{

inline Store plain_store(const std::string& dir)
{
    std::filesystem::create_directories(dir + "/backups");
    Store s;
    s.location.path = dir;
    s.location.plain_directory = true;
    s.fd = UniqueFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    s.backups_fd = UniqueFd(::open((dir + "/backups").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    REQUIRE(s.fd);
    REQUIRE(s.backups_fd);
    return s;
}

} // namespace ur::test
