// Whether this boot's initramfs ran upgrade-recovery's dracut module. The initrd
// unit runs `recover --initrd` at every boot, armed or not, and leaves a mark in
// /run (kept across the switch root). Without the module in the initramfs an
// armed recovery never runs: the node boots into the failed upgrade, armed, and
// nobody is told, so `arm`, `watchdog start` and `status` say so on the host.
#pragma once

#include <optional>
#include <string>

namespace ur
{

inline constexpr const char* kInitrdRunDir = "/run/upgrade-recovery";

// Whether this process runs in an initramfs (/etc/initrd-release, as systemd decides).
bool in_initramfs();

// In the initramfs: write <run_dir>/initrd. Best effort: a
// failure is logged, never a reason to stop the boot.
void mark_initrd_ran(const std::string& run_dir, const std::string& version);

// On a booted host: empty when <run_dir>/initrd is there; else a warning that
// names the check to make and where the module comes from.
std::string initrd_module_warning(const std::string& run_dir);

// What `arm`, `watchdog start`, `status` and the daemon's ArmRecovery and
// StartWatchdog say of this boot's initramfs: "" when it ran the module, else
// initrd_module_warning(); nullopt where they say nothing: under a root other than
// "/" (a tree, not this boot) and in the initramfs itself. A `run_dir` given (the
// daemon's --initrd-run-dir: tests, a sandbox) is asked whatever the root.
std::optional<std::string> initrd_module_problem(const std::string& root,
                                                 const std::optional<std::string>& run_dir = std::nullopt);

} // namespace ur
