// D-Bus error names for the core's error kinds: io.openshift.UpgradeRecovery1.Error.<Kind>.
// Clients match on the name, never on the message text (rauc#690).
#pragma once

#include "error.hpp"

#include <string>
#include <systemd/sd-bus.h>

namespace ur::dbus
{

inline constexpr const char* kBusName = "io.openshift.UpgradeRecovery1";
inline constexpr const char* kManagerPath = "/io/openshift/UpgradeRecovery1";
inline constexpr const char* kJobPathPrefix = "/io/openshift/UpgradeRecovery1/job";
inline constexpr const char* kManagerInterface = "io.openshift.UpgradeRecovery1.Manager";
inline constexpr const char* kJobInterface = "io.openshift.UpgradeRecovery1.Job";
inline constexpr const char* kErrorPrefix = ur::kErrorNamePrefix;

// error_name(kind) (core error.hpp): "io.openshift.UpgradeRecovery1.Error.NoSpace"

// The kind a name stands for; Internal for names that are not ours.
ErrorKind kind_from_error_name(const char* name);

// Fill `ret` from a core error; returns the negative errno sd-bus handlers return.
int set_error(sd_bus_error* ret, const Error& e);

// Teach sd-bus our names <-> errno (sd_bus_error_add_map), so errno-based
// callers and sd_bus_error_get_errno() see ENOSPC for NoSpace and so on.
int register_error_map();

// The CLI's exit codes (docs/architecture.md), for the client mode.
int exit_code_for(ErrorKind kind);

} // namespace ur::dbus
