// The kernel argument upgrade_recovery=phase1 asks the initramfs for phase 1 of a
// recovery. It is meant for one boot, typed at the boot menu. Left in a boot entry
// (rpm-ostree kargs --append, a MachineConfig's kernelArguments), every boot asks
// again, and the initramfs ignores it only once the latest backup was recovered
// completely: after an abandon, or a new backup, the next boot restores that
// backup over whatever changed since, an upgrade included. The initramfs cannot
// see the boot entries (/boot is not mounted there); the booted host can, so its
// commands say so.
#pragma once

#include "error.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace ur
{

inline constexpr std::string_view kRecoveryKarg = "upgrade_recovery=phase1";

// Whether a kernel command line (or a boot entry's options) asks for phase 1.
bool cmdline_requests_recovery(std::string_view cmdline);

// The boot loader entries (Boot Loader Specification: <root>/boot/loader/entries/
// *.conf, as ostree writes them) whose `options` hold the argument, by file name,
// sorted. Empty when there are no entries (no /boot, or /boot not mounted).
Result<std::vector<std::string>> boot_entries_requesting_recovery(const std::string& root);

// Empty when no boot entry holds the argument; else a warning naming the entries,
// what the next boot does, and how to remove it. A /boot that cannot be read is
// said too: whether the next boot restores cannot be told.
std::string persistent_karg_warning(const std::string& root);
// The same from the entries already read.
std::string persistent_karg_warning(const Result<std::vector<std::string>>& entries);

} // namespace ur
