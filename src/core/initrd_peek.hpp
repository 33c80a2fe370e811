// Whether the recovery partition is armed, as seen from the initramfs before
// anything of the real root is touched.
//
// Most boots are ordinary: nothing armed. The initrd unit then reads only the
// `recovery/armed` marker from the partition, mounted read-only in a private
// directory and unmounted again, and leaves the real root alone: no /var
// mount (initrd_var.hpp), nothing mounted at the partition's own mount point.
#pragma once

#include "config.hpp"
#include "error.hpp"

#include <string>

namespace ur
{

enum class PeekResult {
    Armed,
    NotArmed,
    NoPartition,  // no GPT partition named partition.label
    NoFilesystem, // the partition has none: the long way reports it
};

// Look for the armed marker on the partition named partition.label. The mount
// at `peek_dir` (created 0700) is gone when this returns, whatever happened.
Result<PeekResult> peek_armed(const Config& cfg, const std::string& peek_dir);

} // namespace ur
