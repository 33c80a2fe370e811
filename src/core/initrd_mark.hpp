// Whether this boot's initramfs ran upgrade-recovery's dracut module. The initrd
// unit runs `recover --initrd` at every boot, armed or not, and leaves a mark in
// /run (kept across the switch root). Without the module in the initramfs an
// armed recovery never runs: the node boots into the failed upgrade, armed, and
// nobody is told, so `arm`, `watchdog start` and `status` say so on the host.
#pragma once

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

} // namespace ur
