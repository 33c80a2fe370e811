// The real root's /var for phase 1 in the initramfs.
//
// With systemd as PID 1, /var is mounted only after the switch root: from the
// root's /etc/fstab or an /etc/systemd/system/var.mount unit when it is a
// separate filesystem, and on an ostree system by the var.mount unit that
// ostree-system-generator writes (a bind mount of the stateroot's var,
// /sysroot/ostree/deploy/<stateroot>/var; ostree-prepare-root leaves /var
// alone under systemd). Until then <root>/var is the deployment's own, empty
// directory: /var/lib/kubelet restored there, or the recovery partition
// mounted there, would be hidden by the real /var after the switch root.
#pragma once

#include "error.hpp"
#include "partition.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace ur
{

struct VarSource {
    std::string what;     // a device or tag; for a bind mount a directory of the real root
    bool in_root = false; // `what` is a path inside the root (bind mounts), resolved there
    std::string fstype;   // "" for a bind mount or to let libmount probe
    std::string options;  // fstab/unit options; "bind" for directories
    std::string origin;   // where it was declared, for messages
};

// What the real /var is when <root>/var is not a mount point yet: a /var line
// in <root>/etc/fstab, else <root>/etc/systemd/system/var.mount, else on an
// ostree boot (ostree=/ostree/boot.N/<stateroot>/... on `cmdline`) the
// stateroot's var below the physical root (<root>/sysroot). nullopt when
// <root>/var is already a mount point or nothing declares one (then /var is
// a directory of the root filesystem, as on most non-ostree hosts).
Result<std::optional<VarSource>> find_real_var(const std::string& root, std::string_view cmdline);

// The stateroot named by an ostree= kernel argument, "" without one.
std::string ostree_stateroot(std::string_view cmdline);

// <root>/var mounted from a VarSource for as long as the guard lives; it
// detaches it with everything mounted below it (the recovery partition), so
// the boot goes on with the mounts the OS itself makes.
Result<MountGuard> mount_real_var(const std::string& root, const VarSource& src);

} // namespace ur
