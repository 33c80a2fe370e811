// ostree deployments, through libostree (never by running ostree/rpm-ostree).
#pragma once

#include "config.hpp"
#include "metadata.hpp"

#include <string>

namespace ur {

// Whether <root><sysroot> holds an ostree sysroot and ostree.mode allows using it.
bool ostree_enabled(const Config& cfg, const std::string& root);

// Before a backup: find the booted deployment (not index 0, W4), pin it, drop
// a staged deployment and the unpinned standby deployments; never remove a
// pinned one. Remounts a read-only sysroot writable and restores it on every
// exit path. Returns what metadata records.
Result<OstreeRecord> ostree_prepare_for_backup(const Config& cfg, const std::string& root);

} // namespace ur
