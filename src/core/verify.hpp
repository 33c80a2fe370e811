// Re-read a generation and compare every file with its manifest entry.
#pragma once

#include "progress.hpp"
#include "store.hpp"

#include <string>
#include <vector>

namespace ur
{

struct VerifyReport {
    std::string id;
    uint64_t checked = 0;
    std::vector<std::string> mismatches; // one line each: "<path>: <what differs>"
    bool ok() const { return mismatches.empty(); }
};

// Corrupt is not an error here: the report says so. Errors are for I/O trouble
// that stopped the verification.
Result<VerifyReport> verify_backup(const Store& store, const std::string& id, Progress& progress,
                                   const CancelToken& cancel);

} // namespace ur
