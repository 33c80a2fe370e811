// MachineConfig-managed files that live outside the backed-up trees, read from
// the node's own /etc/machine-config-daemon/currentconfig (JSON, no API: W6).
#pragma once

#include "config.hpp"

#include <string>
#include <vector>

namespace ur
{

struct MachineConfigFiles {
    bool config_present = false;
    std::vector<std::string> outside; // absolute paths outside every tree, sorted, unique
    std::vector<std::string> missing; // of `outside`, those missing on disk
    // What the backup copies for the others: each by the path the host really
    // has (a directory on the way may be a symlink: /opt -> var/opt, and a walk
    // does not follow it), minus those that path puts inside a tree.
    std::vector<std::string> copy;
};

// Files and systemd unit paths of spec.config. A missing currentconfig yields an
// empty set (error when machineconfig.required); an unreadable or malformed one is an error.
Result<MachineConfigFiles> read_machineconfig_files(const Config& cfg, const std::string& root);

} // namespace ur
