// The daemon's own journal events, next to the core's (src/core/log.hpp); each is
// explained in units/upgrade-recovery.catalog. The core's backup events carry the
// backup id; these carry the D-Bus job that ran it (UPGRADE_RECOVERY_JOB).
#pragma once

namespace ur::dbus
{

inline constexpr const char* kJobStarted = "6c2d9a87c3fd4d74a07c989e92a54396";
inline constexpr const char* kJobFinished = "98a88a1822a944edb5fcdfefe5169534";

} // namespace ur::dbus
